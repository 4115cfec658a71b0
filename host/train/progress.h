#pragma once
// Progress output as a training callback: one line per epoch (metrics, learning rate,
// time, "*best*", "(early stop)"); on a terminal also a bar redrawn during the epoch.
// Other parts of training (the feature cache) print their lines through note().

#include "host/train/callback.h"

#include <chrono>
#include <iosfwd>
#include <string>

namespace bachlab::host {

class ProgressOutput : public TrainingCallback {
 public:
  /// `interactive`: `out` is a terminal, so a bar is redrawn in place.
  ProgressOutput(std::ostream& out, bool interactive) : out_(out), interactive_(interactive) {}

  void on_epoch_begin(Trainer& trainer, int64_t epoch, BatchSource& train) override;
  void on_batch_end(Trainer& trainer, const BatchEnd& batch) override;
  void on_epoch_end(Trainer& trainer, const EpochRecord& record) override;

  /// Prints `line` on a line of its own (over the bar on a terminal).
  void note(const std::string& line);

 private:
  std::ostream& out_;
  bool interactive_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace bachlab::host
