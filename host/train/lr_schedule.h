#pragma once
// The learning-rate schedule ([train.schedule]) as a training callback: before each epoch
// it sets every optimizer group's rate from that group's base rate (lr * lr_scale):
//
//   step      base * gamma^floor((epoch - 1) / step_size)
//   cosine    min_lr + (base - min_lr) * (1 + cos(pi * (epoch - 1) / epochs)) / 2
//   plateau   base * factor^k, k = how often `monitor` went `patience` epochs without
//             improving (updated after each epoch), never below min_lr
//   none      base

#include "host/train/callback.h"
#include "host/train/train_settings.h"

#include <cstdint>
#include <vector>

namespace bachlab::host {

class LearningRateSchedule : public TrainingCallback {
 public:
  /// `base_lrs`: one rate per optimizer param group; `epochs`: the run's length (cosine).
  LearningRateSchedule(ScheduleSettings settings, int64_t epochs, std::vector<double> base_lrs);

  void on_epoch_begin(Trainer& trainer, int64_t epoch, BatchSource& train) override;
  void on_epoch_end(Trainer& trainer, const EpochRecord& record) override;
  std::string state_key() const override { return "lr_schedule"; }
  void save_state(nlohmann::json& state) const override;
  void load_state(const nlohmann::json& state) override;

 private:
  ScheduleSettings settings_;
  int64_t epochs_;
  std::vector<double> base_lrs_;
  // Saved in last.pt (plateau only changes them).
  double factor_ = 1.0;  // accumulated factor
  double plateau_best_;
  int64_t plateau_wait_ = 0;
};

}  // namespace bachlab::host
