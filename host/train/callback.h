#pragma once
// The points of the training loop where behaviour plugs in, in the shape of Keras
// callbacks and Lightning's Callback. Trainer::fit() is a small loop:
//
//   on_train_begin
//   for each epoch:  on_epoch_begin -> batches -> validation -> on_epoch_end
//                    -> checkpoint (last.pt, best.pt)
//     each batch:    on_batch_begin -> forward -> on_before_backward -> backward
//                    -> (gradients reduced over ranks) -> on_before_optimizer_step
//                    -> step -> on_batch_end
//   on_train_end     (not when an exception ends training: a kill must look the same)
//
// The batch hooks are where numerics plug in without touching the loop: mixed precision
// opens its autocast scope in on_batch_begin and closes it in on_before_backward
// (host/train/precision.h); gradient clipping would act in on_before_optimizer_step.
//
// Early stopping, the learning-rate schedule, the frozen-feature cache, progress output
// and history.csv are callbacks (one file each under host/train/). They run in the order
// they were added, the trainer's own (early stopping, the schedule, the feature cache)
// first. The contract:
//   - Any callback may end training with Trainer::request_stop(reason), from any hook; the
//     loop finishes the current epoch (its on_epoch_end and checkpoint included) and
//     starts no other. Early stopping stops this way.
//   - A callback with state a resumed run needs names it with state_key(); the checkpoint
//     stores what its save_state() writes under that key, and hands the same object back
//     to load_state(). Keys are unique among a trainer's callbacks.
//   - Checkpoints are not a callback: the trainer writes them after every callback's
//     on_epoch_end, so they hold every callback's updated state whatever the add order.
//   - How the validation split is measured is the trainer's (TrainerParts::validation),
//     not a callback's.

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>

namespace bachlab::host {

class Trainer;
class BatchSource;
struct EpochRecord;

/// Which batch is about to be computed.
struct BatchBegin {
  /// 1-based epoch; 0-based batch index and the epoch's number of batches.
  int64_t epoch = 0;
  int64_t batch = 0;
  int64_t batches = 0;
};

/// What a callback learns after each optimizer step.
struct BatchEnd {
  /// 1-based epoch.
  int64_t epoch = 0;
  /// 0-based batch index and the epoch's number of batches.
  int64_t batch = 0;
  int64_t batches = 0;
  /// Mean training loss over the epoch's batches so far.
  double mean_loss = 0;
  /// Seconds since the epoch's first batch.
  double seconds = 0;
};

class TrainingCallback {
 public:
  virtual ~TrainingCallback() = default;

  /// Once per fit(), before its first epoch (after a resume(), before the next epoch).
  virtual void on_train_begin(Trainer&) {}
  /// Before the batches of `epoch` (1-based) are drawn from `train`.
  virtual void on_epoch_begin(Trainer&, int64_t epoch, BatchSource& train) {}
  /// Before the batch's forward pass.
  virtual void on_batch_begin(Trainer&, const BatchBegin&) {}
  /// After the forward pass and the loss, before backward.
  virtual void on_before_backward(Trainer&) {}
  /// After backward (and the ranks' gradient sum), before the optimizer's step; the
  /// gradients are the whole batch's.
  virtual void on_before_optimizer_step(Trainer&) {}
  /// After each optimizer step.
  virtual void on_batch_end(Trainer&, const BatchEnd&) {}
  /// After the epoch's validation; `record` is already the last of Trainer::history().
  virtual void on_epoch_end(Trainer&, const EpochRecord& record) {}
  /// After the last epoch of fit().
  virtual void on_train_end(Trainer&) {}

  /// The key of this callback's state in a checkpoint (Lightning's state_key); empty (the
  /// default): the callback has no state to save.
  virtual std::string state_key() const { return {}; }
  /// Writes what a resumed run needs of this callback into `state`, an object of its own
  /// (stored under state_key()). Default: nothing.
  virtual void save_state(nlohmann::json& state) const {}
  /// Reads back what save_state() wrote. Checkpoints written before callbacks had keys
  /// hand over the one flat object all of them shared, whose keys are the same.
  virtual void load_state(const nlohmann::json& state) {}
};

}  // namespace bachlab::host
