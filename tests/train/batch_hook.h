#pragma once
// A training callback that calls a function after each batch with (epoch, batch index):
// lets tests interrupt a run at any point, as a kill would.
#include "host/train/trainer.h"

#include <functional>
#include <memory>
#include <utility>

namespace bachlab::host::testing {

class BatchHook : public TrainingCallback {
 public:
  explicit BatchHook(std::function<void(int64_t epoch, int64_t batch)> hook) : hook_(std::move(hook)) {}
  void on_batch_end(Trainer&, const BatchEnd& batch) override { hook_(batch.epoch, batch.batch); }

 private:
  std::function<void(int64_t, int64_t)> hook_;
};

inline void add_batch_hook(Trainer& trainer, std::function<void(int64_t epoch, int64_t batch)> hook) {
  trainer.add_callback(std::make_shared<BatchHook>(std::move(hook)));
}

}  // namespace bachlab::host::testing
