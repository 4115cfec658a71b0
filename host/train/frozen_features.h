#pragma once
// The frozen-feature cache as a training callback. A model with a frozen backbone
// (sdk::Network::frozen_features() is not null) gives every image the same features in every
// epoch, so the backbone runs once per image (per augmented copy, see FeatureCache) and
// the trainer trains and predicts with the head only. on_epoch_begin gets the epoch's
// training features (computed, read from disk, or from memory); the trainer asks for
// them, and for the un-augmented features of what it predicts, here.

#include "host/train/callback.h"
#include "host/train/feature_cache.h"
#include "host/train/train_settings.h"

#include <bachlab/sdk/model.h>

#include <torch/torch.h>

#include <memory>

namespace bachlab::host {

class ProgressOutput;

class FrozenFeatures : public TrainingCallback {
 public:
  FrozenFeatures(FeatureCacheSettings settings, FeatureInputs inputs);

  void on_epoch_begin(Trainer& trainer, int64_t epoch, BatchSource& train) override;

  /// The features the head trains on in `epoch` (1-based; see
  /// FeatureCache::training_features), one row per image of `train`, which must be
  /// whole images. Those on_epoch_begin got, or got now (train_epoch outside fit()).
  torch::Tensor training_features(sdk::Network& model, BatchSource& train, int64_t epoch);
  /// The un-augmented features of `images` (validation, test, predict).
  torch::Tensor features(sdk::Network& model, const torch::Tensor& images);

  /// Where a line goes for each backbone pass or disk read (they can take minutes).
  void set_progress(std::shared_ptr<ProgressOutput> progress) { progress_ = std::move(progress); }
  const FeatureCacheStats& stats() const { return cache_.stats(); }

 private:
  // epoch 0: un-augmented features.
  torch::Tensor timed(sdk::Network& model, const torch::Tensor& images, int64_t epoch);

  FeatureCache cache_;
  FeatureInputs inputs_;
  std::shared_ptr<ProgressOutput> progress_;
  // The features on_epoch_begin got, and for which epoch and images.
  int64_t prepared_epoch_ = 0;
  torch::Tensor prepared_images_;
  torch::Tensor prepared_;
};

}  // namespace bachlab::host
