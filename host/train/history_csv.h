#pragma once
// history.csv as a training callback: rewritten after every epoch, so a running or killed
// run shows its curve so far; the run report writes the same text at the end.

#include "host/eval/history.h"
#include "host/train/callback.h"

#include <filesystem>

namespace bachlab::host {

/// Rewrites `file` (atomically) with the trainer's history after every epoch.
class HistoryCsv : public TrainingCallback {
 public:
  explicit HistoryCsv(std::filesystem::path file) : file_(std::move(file)) {}
  void on_epoch_end(Trainer& trainer, const EpochRecord& record) override;

 private:
  std::filesystem::path file_;
};

}  // namespace bachlab::host
