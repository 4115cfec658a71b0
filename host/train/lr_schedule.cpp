#include "host/train/lr_schedule.h"

#include "host/eval/history.h"
#include "host/train/state_json.h"
#include "host/train/trainer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

namespace bachlab::host {

LearningRateSchedule::LearningRateSchedule(ScheduleSettings settings, int64_t epochs, std::vector<double> base_lrs)
    : settings_(std::move(settings)),
      epochs_(epochs),
      base_lrs_(std::move(base_lrs)),
      plateau_best_(std::numeric_limits<double>::quiet_NaN()) {}

void LearningRateSchedule::on_epoch_begin(Trainer& trainer, int64_t epoch, BatchSource&) {
  auto& groups = trainer.optimizer().param_groups();
  for (size_t g = 0; g < groups.size(); ++g) {
    const double base = base_lrs_.at(g);
    double lr = base;
    if (settings_.type == ScheduleType::step) {
      lr = base * std::pow(settings_.gamma, static_cast<double>((epoch - 1) / settings_.step_size));
    } else if (settings_.type == ScheduleType::cosine) {
      const double progress = static_cast<double>(epoch - 1) / static_cast<double>(epochs_);
      lr = settings_.min_lr + (base - settings_.min_lr) * 0.5 * (1.0 + std::cos(M_PI * progress));
    } else if (settings_.type == ScheduleType::plateau) {
      lr = std::max(base * factor_, settings_.min_lr);
    }
    groups[g].options().set_lr(lr);
  }
}

void LearningRateSchedule::on_epoch_end(Trainer&, const EpochRecord& record) {
  if (settings_.type != ScheduleType::plateau) return;
  const double watched = metric_value(record, settings_.monitor);
  if (improves(watched, plateau_best_, larger_is_better(settings_.monitor))) {
    plateau_best_ = watched;
    plateau_wait_ = 0;
  } else if (++plateau_wait_ >= settings_.patience) {
    factor_ *= settings_.factor;
    plateau_wait_ = 0;
  }
}

void LearningRateSchedule::save_state(nlohmann::json& state) const {
  state["lr_factor"] = factor_;
  state["plateau_best"] = nullable_number(plateau_best_);
  state["plateau_wait"] = plateau_wait_;
}

void LearningRateSchedule::load_state(const nlohmann::json& state) {
  factor_ = state.at("lr_factor").get<double>();
  plateau_best_ = nullable_number(state.at("plateau_best"));
  plateau_wait_ = state.at("plateau_wait").get<int64_t>();
}

}  // namespace bachlab::host
