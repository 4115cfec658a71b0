#pragma once
// The best epoch and early stopping, as a training callback (Keras' EarlyStopping with
// restore_best_weights): after each epoch it compares the monitored metric
// ([train.early_stopping] monitor) with the best so far, keeps a copy of the best
// epoch's trained weights, and asks the trainer to stop (Trainer::request_stop) after
// `patience` epochs without an improvement of more than min_delta. At the end of training it puts the best
// weights back when [train] restore_best is set.

#include "host/train/callback.h"
#include "host/train/model_state.h"
#include "host/train/train_settings.h"

#include <cstdint>

namespace bachlab::host {

class EarlyStopping : public TrainingCallback {
 public:
  EarlyStopping(EarlyStoppingSettings settings, bool restore_best);

  void on_epoch_end(Trainer& trainer, const EpochRecord& record) override;
  void on_train_end(Trainer& trainer) override;
  std::string state_key() const override { return "early_stopping"; }
  void save_state(nlohmann::json& state) const override;
  void load_state(const nlohmann::json& state) override;

  /// Takes the model's current weights as the best epoch's (resume() after loading best.pt).
  void remember_best_weights(sdk::Network& model);

  /// Epoch (1-based) with the best monitored value so far; 0 if none was finite.
  int64_t best_epoch() const { return best_epoch_; }
  double best_value() const { return best_value_; }
  /// The reason request_stop() is given when patience runs out.
  std::string stop_reason() const;

 private:
  EarlyStoppingSettings settings_;
  bool restore_best_;
  NamedTensors best_weights_;
  // Saved in last.pt.
  int64_t best_epoch_ = 0;
  double best_value_;
  double stop_best_;     // patience's reference value (moves by more than min_delta)
  int64_t stop_wait_ = 0;  // epochs since it last moved
};

}  // namespace bachlab::host
