#pragma once
// A frozen backbone's inputs (model_inputs.h): a model with a frozen backbone
// (sdk::Network::frozen_features() is not null) gives every image the same features in every
// epoch, so the backbone runs once per image (per augmented copy, see FeatureCache) and
// the trainer trains and predicts with the head only. As a callback, on_epoch_begin gets
// the epoch's training features (computed, read from disk, or from memory) before the
// epoch's first batch, so the time shows as its own progress line.

#include "host/train/callback.h"
#include "host/train/feature_cache.h"
#include "host/train/model_inputs.h"
#include "host/train/train_settings.h"

#include <bachlab/sdk/model.h>

#include <torch/torch.h>

#include <memory>
#include <optional>

namespace bachlab::host {

class ProgressOutput;

class CachedFeatures : public TrainingCallback, public ModelInputs {
 public:
  /// The head runs on `device`.
  CachedFeatures(FeatureCacheSettings settings, FeatureInputs inputs, torch::Device device);

  void on_epoch_begin(Trainer& trainer, int64_t epoch, BatchSource& train) override;

  /// The samples of `train` with each image's features of `epoch` in place of its pixels.
  BatchSource& epoch_batches(sdk::Network& model, BatchSource& train, int64_t epoch) override;
  /// Features as they are: their augmented copies were made when they were cached.
  torch::Tensor training_batch(const torch::Tensor& batch, torch::Generator&) override { return batch; }
  /// The un-augmented features of `images`.
  torch::Tensor prediction_inputs(sdk::Network& model, const torch::Tensor& images) override;
  /// The head's float32 logits.
  torch::Tensor logits(sdk::Network& model, const torch::Tensor& features) override;

  /// The features the head trains on in `epoch` (1-based; see
  /// FeatureCache::training_features), one row per image of `train`, which must be
  /// whole images. Those on_epoch_begin got, or got now (train_epoch outside fit()).
  torch::Tensor training_features(sdk::Network& model, BatchSource& train, int64_t epoch);
  /// Where a line goes for each backbone pass or disk read (they can take minutes).
  void set_progress(std::shared_ptr<ProgressOutput> progress) { progress_ = std::move(progress); }
  const FeatureCacheStats& stats() const { return cache_.stats(); }

 private:
  // epoch 0: un-augmented features.
  torch::Tensor timed(sdk::Network& model, const torch::Tensor& images, int64_t epoch);

  FeatureCache cache_;
  FeatureInputs inputs_;
  torch::Device device_;
  std::shared_ptr<ProgressOutput> progress_;
  // The features on_epoch_begin got, and for which epoch and images.
  int64_t prepared_epoch_ = 0;
  torch::Tensor prepared_images_;
  torch::Tensor prepared_;
  std::optional<FeatureBatches> batches_;
};

}  // namespace bachlab::host
