#pragma once
// Where the trainer's batches come from. The trainer's loop asks a BatchSource to start an
// epoch (drawing everything random about it - order, patch positions - from the trainer's
// generator, so a resumed run draws the very same batches) and then takes batches of it:
//   WholeImages   every image as it is, in a shuffled order (the study's training)
//   PatchSampler  per_image random square patches of every image, each with its image's
//                 label (host/train/patch_sampler.h)
// The [train] loop does not know which it has; [data.patches] size picks one.

#include <torch/torch.h>

#include <cstdint>

namespace bachlab::host {

/// Images (N, C, H, W), uint8 or float, and int64 labels (N): a split of the data.
struct TensorSplit {
  torch::Tensor images;
  torch::Tensor labels;
  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
};

/// Images (N, C, H, W), uint8 or float, and int64 labels (N) of one training batch.
struct Batch {
  torch::Tensor images;
  torch::Tensor labels;
  /// Row of each sample's source image in the split (several rows repeat for patches).
  torch::Tensor rows;
};

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  /// Draws the epoch's order (and, for patches, positions) from `generator`; returns how
  /// many samples the epoch has.
  virtual int64_t start_epoch(torch::Generator& generator) = 0;
  /// Samples [begin, end) of the epoch started last.
  virtual Batch batch(int64_t begin, int64_t end) const = 0;
  /// The whole images when every sample is one (frozen-feature models need this: their
  /// features are cached per image); null for patches.
  virtual const TensorSplit* whole_images() const { return nullptr; }
};

/// Every image of `split`, shuffled each epoch (one randperm of the generator per epoch,
/// as the trainer always drew).
class WholeImages : public BatchSource {
 public:
  /// Keeps a reference: `split` must outlive this source.
  explicit WholeImages(const TensorSplit& split) : split_(split) {}
  int64_t start_epoch(torch::Generator& generator) override;
  Batch batch(int64_t begin, int64_t end) const override;
  const TensorSplit* whole_images() const override { return &split_; }

 private:
  const TensorSplit& split_;
  torch::Tensor order_;
};

/// The batches of `images` with each sample's pixels replaced by its image's row of
/// `features` (so Batch::images holds features): a frozen backbone's training batches.
/// The order is drawn by `images`, so the epoch draws what it would with pixels.
class FeatureBatches : public BatchSource {
 public:
  /// Keeps a reference: `images` must outlive this source.
  FeatureBatches(BatchSource& images, torch::Tensor features) : images_(images), features_(std::move(features)) {}
  int64_t start_epoch(torch::Generator& generator) override { return images_.start_epoch(generator); }
  Batch batch(int64_t begin, int64_t end) const override;
  const TensorSplit* whole_images() const override { return images_.whole_images(); }

 private:
  BatchSource& images_;
  torch::Tensor features_;
};

}  // namespace bachlab::host
