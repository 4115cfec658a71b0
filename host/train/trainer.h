#pragma once
// The training loop: seeded shuffling, augmentation plugins on training batches only,
// cross-entropy (+ the model's regularization term), the optimizer plugin, a learning-rate
// schedule, early stopping, per-epoch metrics, and checkpoints that make a killed run
// resumable to the very same numbers.
//
// A model with a frozen backbone (sdk::Network::has_frozen_features()) gives every image
// the same features in every epoch, so the trainer takes them from a FeatureCache
// (host/train/feature_cache.h): the backbone runs once per image (per augmented copy),
// and every epoch, validation and prediction after that runs only the head.
//
// Reproducibility: every random number of training comes from two generators, the
// trainer's own (shuffling, augmentations) and LibTorch's default CPU generator (dropout
// and other layers). Both are seeded from the experiment seed and both are saved in every
// checkpoint, so a resumed run draws exactly the numbers the uninterrupted one would.

#include "host/eval/metrics.h"
#include "host/train/batch_source.h"
#include "host/train/feature_cache.h"
#include "host/train/train_settings.h"

#include <bachlab/sdk/augmentation.h>
#include <bachlab/sdk/model.h>

#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace bachlab::host {

/// The four numbers recorded per split and epoch.
struct EpochMetrics {
  double loss = 0;
  double accuracy = 0;
  double auroc_micro = 0;
  double auroc_macro = 0;
};

/// One line of history.csv.
struct EpochRecord {
  /// 1-based.
  int64_t epoch = 0;
  /// Learning rate of the first parameter group during this epoch.
  double lr = 0;
  /// Running metrics over the epoch's training batches, in training mode (dropout on),
  /// as Keras reports them.
  EpochMetrics train;
  /// Metrics on the validation split after the epoch, in evaluation mode; NaN if empty.
  EpochMetrics val;
  /// Wall-clock seconds of the epoch (not part of the reproducible numbers).
  double seconds = 0;
};

/// The value of a monitorable metric ("val_loss", ...) in a record.
double metric_value(const EpochRecord& record, const std::string& metric);

/// What the trainer builds on: objects made by plugins.
struct TrainerParts {
  std::shared_ptr<sdk::Network> model;
  std::shared_ptr<torch::optim::Optimizer> optimizer;
  /// Applied in order to every training batch (never to validation or test); with a
  /// frozen backbone, to the cached augmented copies instead.
  std::vector<std::shared_ptr<sdk::Augmentation>> augmentations;
  /// Identifies the augmentations' settings in feature cache keys (the [[augment]]
  /// tables); empty: augmented copies of features stay in memory only.
  std::string augmentations_key;
  /// Learning rate of each optimizer param group before any schedule (lr * lr_scale).
  /// Empty: taken from the optimizer as built.
  std::vector<double> base_lrs;
};

/// What fit() ends with.
struct TrainOutcome {
  std::vector<EpochRecord> history;
  /// Epoch (1-based) with the best monitored value; 0 if none was finite.
  int64_t best_epoch = 0;
  double best_value = 0;
  /// True if early stopping ended training before `epochs`.
  bool stopped_early = false;
  /// Seconds spent in fit() by this process (a resumed run counts only its own part).
  double seconds = 0;
};

/// Class probabilities of a split and its mean loss.
struct Prediction {
  /// Softmax output (N, num_classes), float, on the CPU.
  torch::Tensor probabilities;
  /// Mean of the training loss (with its label smoothing) plus the regularization term,
  /// as Keras reports validation loss; NaN without labels.
  double loss = 0;
};

class Trainer {
 public:
  /// `seed` drives the trainer's generator and LibTorch's default generator. Stored
  /// uint8 batches become floats in [0,1] (float batches are taken as they are), the
  /// augmentations run on those, as Keras' ImageDataGenerator ran before standardising,
  /// and `normalize` (default: none) turns the result into the model's input.
  Trainer(TrainerParts parts, TrainSettings settings, uint64_t seed, BatchTransform normalize = {});

  /// Writes best.pt and last.pt to `folder` after each epoch (atomically); empty: none.
  void set_checkpoint_dir(const std::filesystem::path& folder);
  /// Where progress goes; `interactive` draws a redrawn bar, otherwise one line per epoch.
  /// Default: no output.
  void set_progress(std::ostream* out, bool interactive);
  /// Called after each batch with (epoch, batch index); lets tests interrupt a run at any
  /// point, as a kill would.
  void set_batch_hook(std::function<void(int64_t epoch, int64_t batch)> hook);

  /// Restores the state of last.pt (and best.pt) from the checkpoint folder. Returns false
  /// if there is no last.pt; throws Error if it cannot be read or does not fit the model.
  bool resume();

  /// Loads only the model weights of a checkpoint (best.pt or last.pt), e.g. to evaluate
  /// or predict with a finished run. Throws Error if it does not fit the model.
  void load_weights(const std::filesystem::path& checkpoint);

  /// How fit() measures the validation split after each epoch. Default: predict(), one
  /// input per image; patch training sets photo-level prediction (host/eval/photo_prediction.h).
  void set_validation(std::function<Prediction(const TensorSplit& val)> validate);

  /// Trains until `epochs` or early stopping, continuing after a resume(). If
  /// restore_best is set, the model holds the best epoch's weights afterwards. The
  /// batches come from `train` (whole images or patches, see batch_source.h).
  TrainOutcome fit(BatchSource& train, const TensorSplit& val);
  /// fit() on the whole images of `train`.
  TrainOutcome fit(const TensorSplit& train, const TensorSplit& val);

  /// One training pass over `train` (no validation, schedule or checkpoint): what fit()
  /// does per epoch, exposed for benchmarks. With a frozen backbone, the head trains on
  /// the features of `epoch`'s copy (see FeatureCache::training_features), which needs
  /// whole images.
  EpochMetrics train_epoch(BatchSource& train, int64_t epoch);
  EpochMetrics train_epoch(const TensorSplit& train, int64_t epoch);

  /// Probabilities and loss of `data` in evaluation mode, without gradients.
  Prediction predict(const TensorSplit& data);

  /// Epochs finished so far (after resume(), those of the checkpoint).
  int64_t epochs_done() const { return static_cast<int64_t>(history_.size()); }
  const std::vector<EpochRecord>& history() const { return history_; }
  /// Epoch with the best monitored value so far (0: none) and whether training stopped early.
  int64_t best_epoch() const { return best_epoch_; }
  bool stopped_early() const { return stopped_early_; }
  const TrainSettings& settings() const { return settings_; }
  sdk::Network& model() { return *parts_.model; }
  /// What the feature cache did (all zero unless the model has frozen features).
  const FeatureCacheStats& feature_cache_stats() const { return feature_cache_.stats(); }

 private:
  void apply_learning_rate(int64_t epoch);
  void after_epoch(const EpochRecord& record);
  void save_checkpoint(const std::filesystem::path& file, bool full) const;
  std::string state_json() const;
  void load_state_json(const std::string& text);
  torch::Tensor to_unit(const torch::Tensor& batch) const;
  torch::Tensor cached_features(const torch::Tensor& images, int64_t epoch);
  void report(const EpochRecord& record) const;

  TrainerParts parts_;
  TrainSettings settings_;
  uint64_t seed_;
  BatchTransform normalize_;
  torch::Device device_;
  torch::Generator generator_;
  std::filesystem::path checkpoint_dir_;
  std::ostream* progress_ = nullptr;
  bool interactive_ = false;
  std::function<void(int64_t, int64_t)> batch_hook_;
  std::function<Prediction(const TensorSplit&)> validate_;
  FeatureCache feature_cache_;
  FeatureInputs feature_inputs_;

  // Everything below is saved in last.pt.
  std::vector<EpochRecord> history_;
  int64_t best_epoch_ = 0;
  double best_value_ = 0;
  double stop_best_ = 0;      // early stopping's reference value (moves by > min_delta)
  int64_t stop_wait_ = 0;     // epochs since it last moved
  bool stopped_early_ = false;
  double lr_factor_ = 1.0;    // plateau schedule's accumulated factor
  double plateau_best_ = 0;
  int64_t plateau_wait_ = 0;
  bool started_ = false;      // fit() seeded the default generator already
  std::vector<std::pair<std::string, torch::Tensor>> best_weights_;
};

}  // namespace bachlab::host
