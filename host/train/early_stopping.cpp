#include "host/train/early_stopping.h"

#include "host/eval/history.h"
#include "host/train/state_json.h"
#include "host/train/trainer.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <limits>

namespace bachlab::host {

EarlyStopping::EarlyStopping(EarlyStoppingSettings settings, bool restore_best)
    : settings_(std::move(settings)),
      restore_best_(restore_best),
      best_value_(std::numeric_limits<double>::quiet_NaN()),
      stop_best_(std::numeric_limits<double>::quiet_NaN()) {}

void EarlyStopping::remember_best_weights(sdk::Network& model) { best_weights_ = clone_state(trained_state(model)); }

void EarlyStopping::on_epoch_end(Trainer& trainer, const EpochRecord& record) {
  const double value = metric_value(record, settings_.monitor);
  const bool larger = larger_is_better(settings_.monitor);
  if (improves(value, best_value_, larger)) {
    best_value_ = value;
    best_epoch_ = record.epoch;
    remember_best_weights(trainer.model());
  }
  if (settings_.patience > 0) {
    if (improves(value, stop_best_, larger, settings_.min_delta)) {
      stop_best_ = value;
      stop_wait_ = 0;
    } else if (++stop_wait_ >= settings_.patience) {
      trainer.request_stop(stop_reason());
    }
  }
}

std::string EarlyStopping::stop_reason() const {
  return fmt::format("early stopping: {} did not improve by more than {:g} for {} epochs", settings_.monitor,
                     settings_.min_delta, settings_.patience);
}

void EarlyStopping::on_train_end(Trainer& trainer) {
  if (!restore_best_ || best_weights_.empty()) return;
  torch::NoGradGuard no_grad;
  NamedTensors current = trained_state(trainer.model());
  for (size_t i = 0; i < current.size(); ++i) current[i].second.copy_(best_weights_[i].second);
}

void EarlyStopping::save_state(nlohmann::json& state) const {
  state["best_epoch"] = best_epoch_;
  state["best_value"] = nullable_number(best_value_);
  state["stop_best"] = nullable_number(stop_best_);
  state["stop_wait"] = stop_wait_;
}

void EarlyStopping::load_state(const nlohmann::json& state) {
  best_epoch_ = state.at("best_epoch").get<int64_t>();
  best_value_ = nullable_number(state.at("best_value"));
  stop_best_ = nullable_number(state.at("stop_best"));
  stop_wait_ = state.at("stop_wait").get<int64_t>();
}

}  // namespace bachlab::host
