#pragma once
// What the model is fed, and which part of it runs, chosen once per Trainer:
//   PixelInputs     the images, made [0,1], augmented (training only), normalised and laid
//                   out, through the whole network
//   CachedFeatures  a frozen backbone's cached features through the head only
//                   (cached_features.h; the backbone ran once per image and copy)
// The training step and Trainer::predict() call the same four functions whichever it is,
// so neither has a branch for frozen features.

#include "host/train/batch_source.h"
#include "host/train/feature_cache.h"

#include <bachlab/sdk/augmentation.h>
#include <bachlab/sdk/model.h>

#include <torch/torch.h>

#include <memory>
#include <optional>
#include <vector>

namespace bachlab::host {

class ModelInputs {
 public:
  virtual ~ModelInputs() = default;
  /// The batches the model trains on in `epoch` (1-based): `train` itself, or its samples
  /// as features. Valid until the next call.
  virtual BatchSource& epoch_batches(sdk::Network& model, BatchSource& train, int64_t epoch) = 0;
  /// A whole training batch as the model takes it, drawn before the batch is shared out
  /// between processes, so that every process draws what one process would.
  virtual torch::Tensor training_batch(const torch::Tensor& batch, torch::Generator& generator) = 0;
  /// What predict() slices into batches: the images themselves, or all their features.
  virtual torch::Tensor prediction_inputs(sdk::Network& model, const torch::Tensor& images) = 0;
  /// The float32 logits of rows of what training_batch() or prediction_inputs() returned.
  virtual torch::Tensor logits(sdk::Network& model, const torch::Tensor& inputs) = 0;
};

/// The images through the whole network.
class PixelInputs : public ModelInputs {
 public:
  /// `normalize` turns [0,1] pixels (after the augmentations) into the model's input.
  PixelInputs(BatchTransform normalize, std::vector<std::shared_ptr<sdk::Augmentation>> augmentations,
              torch::Device device, bool channels_last);

  BatchSource& epoch_batches(sdk::Network& model, BatchSource& train, int64_t epoch) override { return train; }
  /// [0,1] floats, through every augmentation in order.
  torch::Tensor training_batch(const torch::Tensor& batch, torch::Generator& generator) override;
  torch::Tensor prediction_inputs(sdk::Network& model, const torch::Tensor& images) override { return images; }
  /// Stored uint8 rows are made [0,1] first; float rows are taken as [0,1] already.
  torch::Tensor logits(sdk::Network& model, const torch::Tensor& inputs) override;

 private:
  BatchTransform normalize_;
  std::vector<std::shared_ptr<sdk::Augmentation>> augmentations_;
  torch::Device device_;
  bool channels_last_;
};

}  // namespace bachlab::host
