#pragma once
// Checkpoints: best.pt after an epoch that is the best so far, last.pt after every epoch,
// each written atomically, and resume() to continue a killed run to the very numbers the
// uninterrupted one ends with. Not a callback: the trainer writes them after every
// callback's on_epoch_end, so they hold every callback's state of that epoch.
//
//   last.pt   the model's trained tensors, the optimizer's state, both random generators
//             (the trainer's and LibTorch's default one) and the training state (history,
//             a requested stop and every callback's save_state() under its state_key(), as
//             JSON; Trainer::state())
//   best.pt   the model's trained tensors and the training state
//
// Both hold a crc32 of their tensors and state, so that a file damaged after it was
// written is refused instead of predicting garbage.
//
// A model with a frozen backbone (ResNet50 features, ~100 MB) checkpoints only what trains:
// the frozen weights come from the weights file its config names, and the state records
// that file's identity (path, size, content hash: frozen_weights_identity()). Loading such
// a checkpoint into a model built from a changed file is refused, naming the file. So a
// frozen-backbone epoch costs what its head costs.

#include "host/eval/history.h"

#include <bachlab/sdk/model.h>

#include <filesystem>

namespace bachlab::host {

class Trainer;

class Checkpoints {
 public:
  explicit Checkpoints(std::filesystem::path folder) : folder_(std::move(folder)) {}

  /// False: resume() reads the folder but nothing is written (the ranks of a
  /// data-parallel run other than rank 0, which writes for all).
  void set_writing(bool writing) { writing_ = writing; }

  /// Creates the folder and removes temporary files that killed runs left there.
  void prepare();
  /// Writes last.pt, and best.pt if `record` is the best epoch so far.
  void write(Trainer& trainer, const EpochRecord& record);

  /// Restores the state of last.pt into `trainer`, and best.pt's weights as its best
  /// epoch's. Returns false if there is no last.pt; throws Error if it cannot be read or
  /// does not fit the model.
  bool resume(Trainer& trainer);

  const std::filesystem::path& folder() const { return folder_; }

 private:
  void save(Trainer& trainer, const std::filesystem::path& file, bool full) const;

  std::filesystem::path folder_;
  bool writing_ = true;
};

/// Loads the weights of checkpoint `file` (best.pt or last.pt) into `model`, e.g. to
/// evaluate or predict with a finished run. Throws Error if it does not fit the model.
void load_checkpoint_weights(sdk::Network& model, const std::filesystem::path& file);

}  // namespace bachlab::host
