#pragma once
// The [train] table and its sub-tables, read once through Params so that every mistake is
// reported with file, line, rule and value:
//
//   [train]                        epochs, batch_size, threads, device, precision,
//                                  channels_last, label_smoothing, restore_best
//   [train.early_stopping]         monitor, patience, min_delta
//   [train.schedule]               type = "none" | "step" | "cosine" | "plateau", and
//                                  step_size, gamma (step); factor, patience, monitor
//                                  (plateau); min_lr (cosine, plateau)
//   [train.feature_cache]          augmented_copies, disk: the frozen-feature cache of
//                                  transfer models (host/train/feature_cache.h)

#include "host/train/precision.h"

#include "host/config/choice.h"

#include <bachlab/sdk/param_table.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace bachlab::host {

class Config;

/// The metrics a run can monitor (early stopping, best checkpoint, plateau schedule).
const std::vector<std::string>& monitorable_metrics();

/// True if larger values of `metric` are better (accuracy, AUROC), false for losses.
bool larger_is_better(const std::string& metric);

struct EarlyStoppingSettings {
  /// Metric that decides the best epoch and early stopping. Default: "val_loss".
  std::string monitor = "val_loss";
  /// Epochs without an improvement of more than min_delta before stopping; 0 never stops.
  /// Default: 0.
  int64_t patience = 0;
  /// Smallest change that counts as an improvement for patience. Default: 0.
  double min_delta = 0.0;
};

/// [train.schedule] type.
enum class ScheduleType { none, step, cosine, plateau };
inline const Choice<ScheduleType> kScheduleTypes{{"none", ScheduleType::none},
                                                 {"step", ScheduleType::step},
                                                 {"cosine", ScheduleType::cosine},
                                                 {"plateau", ScheduleType::plateau}};

struct ScheduleSettings {
  /// Default: none.
  ScheduleType type = ScheduleType::none;
  /// step: epochs between two multiplications by gamma. Default: 10.
  int64_t step_size = 10;
  /// step: factor applied every step_size epochs. Default: 0.1.
  double gamma = 0.1;
  /// plateau: factor applied when the monitored metric stalls. Default: 0.1.
  double factor = 0.1;
  /// plateau: epochs without improvement before the learning rate drops. Default: 5.
  int64_t patience = 5;
  /// plateau: the metric watched. Default: "val_loss".
  std::string monitor = "val_loss";
  /// cosine and plateau: the learning rate never goes below this. Default: 0.
  double min_lr = 0.0;
};

/// [train.feature_cache]: how the trainer caches the features of a frozen backbone.
struct FeatureCacheSettings {
  /// Augmented copies of the training split to cache when augmentations are configured
  /// and the backbone is frozen; 0 refuses that combination. Default: 0.
  int64_t augmented_copies = 0;
  /// Keep features on disk as well as in memory, so the next run of the same experiment
  /// skips the backbone entirely. Default: true.
  bool disk = true;
  /// Folder of the disk files: plan_experiment sets <[data] cache_dir>/features. Empty:
  /// memory only.
  std::filesystem::path folder;
  /// The config file the settings came from, for messages; empty when made in code.
  std::string origin;
};

struct TrainSettings {
  /// Passes over the training split. Default: 20.
  int64_t epochs = 20;
  /// Images per optimizer step; the last batch of an epoch may be smaller. Default: 32.
  int64_t batch_size = 32;
  /// Intra-op threads; 0 uses every core. Numbers are reproducible for a fixed count.
  /// Default: 0.
  int64_t threads = 0;
  /// "cpu" or "cuda" (only where LibTorch was built with CUDA). Default: "cpu".
  std::string device = "cpu";
  /// The forward pass's number format: "fp32", or "bf16" (autocast; see precision.h).
  /// Default: fp32.
  Precision precision = Precision::fp32;
  /// Images and convolution weights in the channels-last layout. Default: false.
  bool channels_last = false;
  /// After a cross-validation, train one more model on every photo (<run>/refit), which
  /// `bachlab predict` on the run folder then uses instead of the fold ensemble. Needs
  /// [data.split] folds. Default: false.
  bool refit = false;
  /// Cross-entropy label smoothing in [0, 1). Default: 0.
  double label_smoothing = 0.0;
  /// Test with the best epoch's weights (by early_stopping.monitor) instead of the last
  /// epoch's. Default: true.
  bool restore_best = true;
  EarlyStoppingSettings early_stopping;
  ScheduleSettings schedule;
  FeatureCacheSettings feature_cache;
};

/// Reads [train], [train.early_stopping], [train.schedule] and [train.feature_cache] from
/// `config`, recording every problem in their Params (reported later by Config::check()).
TrainSettings read_train_settings(Config& config);

/// The same from Params objects directly (what read_train_settings does per table).
TrainSettings read_train_settings(sdk::ParamTable& train, sdk::ParamTable& early_stopping, sdk::ParamTable& schedule,
                                  sdk::ParamTable& feature_cache);

/// The thread count `threads` means on this machine (0 = every core).
int64_t effective_threads(int64_t threads);

}  // namespace bachlab::host
