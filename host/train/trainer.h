#pragma once
// The training loop: seeded shuffling, augmentation plugins on training batches only,
// cross-entropy (+ the model's regularization term) and the optimizer plugin, with the
// rest of training as callbacks (host/train/callback.h): early stopping and the best
// epoch (early_stopping.h), the learning-rate schedule (lr_schedule.h), the frozen-feature
// cache (cached_features.h), progress output (progress.h) and history.csv (history_csv.h);
// after them each epoch, the checkpoints that make a killed run resumable to the very same
// numbers (checkpoints.h).
//
// Reproducibility: every random number of training comes from two generators, the
// trainer's own (shuffling, augmentations) and LibTorch's default CPU generator (dropout
// and other layers). Both are seeded from the experiment seed and both are saved in every
// checkpoint, so a resumed run draws exactly the numbers the uninterrupted one would.

#include "host/eval/metrics.h"
#include "host/train/batch_source.h"
#include "host/train/callback.h"
#include "host/train/early_stopping.h"
#include "host/train/feature_cache.h"
#include "host/train/cached_features.h"
#include "host/train/model_inputs.h"
#include "host/train/step_strategy.h"
#include "host/eval/history.h"
#include "host/train/train_settings.h"

#include <bachlab/sdk/augmentation.h>
#include <bachlab/sdk/model.h>

#include <nlohmann/json_fwd.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace bachlab::host {

class Checkpoints;
class DataParallel;
class Trainer;

/// Class probabilities of a split and its mean loss.
struct Prediction {
  /// Softmax output (N, num_classes), float, on the CPU.
  torch::Tensor probabilities;
  /// Mean of the training loss (with its label smoothing) plus the regularization term,
  /// as Keras reports validation loss; NaN without labels.
  double loss = 0;
};

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
  /// How fit() measures the validation split after each epoch. Empty (the default):
  /// Trainer::predict(), one input per image; patch training measures photos
  /// (host/eval/photo_prediction.h).
  std::function<Prediction(Trainer&, const TensorSplit& val)> validation;
};

/// What fit() ends with.
struct TrainOutcome {
  std::vector<EpochRecord> history;
  /// Epoch (1-based) with the best monitored value; 0 if none was finite.
  int64_t best_epoch = 0;
  double best_value = 0;
  /// True if a callback (early stopping or another) ended training before `epochs`, and
  /// why (Trainer::request_stop).
  bool stopped_early = false;
  std::string stop_reason;
  /// Seconds spent in fit() by this process (a resumed run counts only its own part).
  double seconds = 0;
};

class Trainer {
 public:
  /// `seed` drives the trainer's generator and LibTorch's default generator. Stored
  /// uint8 batches become floats in [0,1] (float batches are taken as they are), the
  /// augmentations run on those, as Keras' ImageDataGenerator ran before standardising,
  /// and `normalize` (default: none) turns the result into the model's input.
  Trainer(TrainerParts parts, TrainSettings settings, uint64_t seed, BatchTransform normalize = {});

  /// Adds a callback; callbacks run in the order added, after the trainer's own (early
  /// stopping, the schedule, the feature cache). Throws std::invalid_argument if its
  /// state_key() is another callback's.
  void add_callback(std::shared_ptr<TrainingCallback> callback);
  /// Checkpoints best.pt and last.pt in `folder` (see checkpoints.h), written after every
  /// callback's on_epoch_end.
  void set_checkpoint_dir(const std::filesystem::path& folder);
  /// Adds the ProgressOutput callback writing to `out`; `interactive` draws a redrawn bar,
  /// otherwise one line per epoch.
  void set_progress(std::ostream* out, bool interactive);
  /// Trains as one rank of `parallel` (data_parallel.h): each batch's rows are shared out,
  /// gradients summed over the ranks, and only rank 0 writes checkpoints.
  void set_data_parallel(std::shared_ptr<DataParallel> parallel);

  /// Restores the state of last.pt (and best.pt) from the checkpoint folder. Returns false
  /// if there is none or no last.pt; throws Error if it cannot be read or does not fit the
  /// model.
  bool resume();

  /// Loads only the model weights of a checkpoint (best.pt or last.pt), e.g. to evaluate
  /// or predict with a finished run. Throws Error if it does not fit the model.
  void load_weights(const std::filesystem::path& checkpoint);

  /// Trains until `epochs` or a callback's request_stop(), continuing after a resume(). If
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
  /// Softmax probabilities (N, K) of a float batch in [0,1] (N, 3, H, W) in evaluation
  /// mode, in float32 without autocast: the computation `bachlab export` traces (the run's
  /// normalisation, the model, the softmax).
  torch::Tensor unit_batch_probabilities(const torch::Tensor& unit_batch);

  /// Epochs finished so far (after resume(), those of the checkpoint).
  int64_t epochs_done() const { return static_cast<int64_t>(history_.size()); }
  const std::vector<EpochRecord>& history() const { return history_; }
  /// Epoch with the best monitored value so far (0: none).
  int64_t best_epoch() const { return early_stopping_->best_epoch(); }
  /// Ends training after the current epoch (or before the first, from on_train_begin);
  /// any callback may call it. The first reason is kept; a checkpoint stores it.
  void request_stop(std::string reason);
  /// Whether a stop was requested, and why.
  bool stopped_early() const { return !stop_reason_.empty(); }
  const std::string& stop_reason() const { return stop_reason_; }
  const TrainSettings& settings() const { return settings_; }
  sdk::Network& model() { return *parts_.model; }
  /// What the feature cache did (all zero unless the model has frozen features).
  const FeatureCacheStats& feature_cache_stats() const;

  // What callbacks work with.
  torch::optim::Optimizer& optimizer() { return *parts_.optimizer; }
  torch::Generator& generator() { return generator_; }
  torch::Device device() const { return device_; }
  EarlyStopping& early_stopping() { return *early_stopping_; }
  /// The training state a checkpoint stores, one JSON object: epochs done, history, the
  /// stop reason ("" if none) and under "callbacks" each callback's save_state() by its
  /// state_key().
  nlohmann::json state() const;
  /// Restores what state() returned; also the flat object of earlier versions (the
  /// trainer's and every callback's keys side by side).
  void load_state(const nlohmann::json& state);

 private:
  TrainerParts parts_;
  TrainSettings settings_;
  uint64_t seed_;
  BatchTransform normalize_;
  torch::Device device_;
  torch::Generator generator_;
  std::vector<std::shared_ptr<TrainingCallback>> callbacks_;
  std::shared_ptr<EarlyStopping> early_stopping_;
  /// The images through the whole model: what training and predict() use unless the
  /// model has a frozen backbone, and what export traces always.
  std::shared_ptr<PixelInputs> pixels_;
  /// Set when the model has a frozen backbone.
  std::shared_ptr<CachedFeatures> cached_features_;
  /// What training and predict() feed the model: pixels_ or cached_features_.
  std::shared_ptr<ModelInputs> inputs_;
  std::shared_ptr<Checkpoints> checkpoints_;
  /// How a step is shared between processes: one process unless set_data_parallel().
  std::shared_ptr<StepStrategy> strategy_ = std::make_shared<StepStrategy>();
  std::vector<EpochRecord> history_;
  std::string stop_reason_;
  bool started_ = false;  // fit() or resume() set the default generator already
};

}  // namespace bachlab::host
