#pragma once
// Patch training ([data.patches]): each epoch, every training photo gives `per_image`
// square patches of `size` pixels at random positions, each labelled with its photo's
// class. The positions come from the trainer's generator (BatchSource::start_epoch), so a
// resumed run samples exactly the patches the uninterrupted one would. With min_tissue > 0
// a position whose patch is mostly blank glass is drawn again (up to kTissueTries times;
// then the most tissue-rich of the draws is kept), so training does not learn "white".
//
// Tissue is any pixel that is not near-white (host/data/tissue.h).
//
// The patches are cut from the prepared image at its own resolution: a (N,3,H,W) uint8
// tensor of any H and W at least `size`, never resized here.

#include "host/data/tissue.h"
#include "host/train/batch_source.h"

#include <bachlab/sdk/param_table.h>

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace bachlab::host {

class Config;

/// Draws per patch before min_tissue gives up and keeps the best one.
inline constexpr int kTissueTries = 10;

/// [data.patches]: patch training and the patch size of photo-level prediction.
struct PatchSettings {
  /// Side of the square patches in pixels of the prepared image; 0 trains and predicts on
  /// whole images (the study's way). Default: 0.
  int64_t size = 0;
  /// Patches drawn from each training photo per epoch. Default: 8.
  int64_t per_image = 8;
  /// Smallest share of tissue pixels (see kGlassLevel) a patch should have; 0 takes any
  /// position. Photo-level prediction also leaves grid patches below it out of a photo's
  /// vote (all of them count when none reaches it). Default: 0.
  double min_tissue = 0.0;

  bool enabled() const { return size > 0; }
};

/// Reads [data.patches], recording every problem in the table's Params.
PatchSettings read_patch_settings(sdk::ParamTable& table);
PatchSettings read_patch_settings(Config& config);

/// Throws Error if a patch of `settings` does not fit in a prepared photo of `height` x
/// `width` pixels.
void check_patch_fits(const PatchSettings& settings, int64_t height, int64_t width);

class PatchSampler : public BatchSource {
 public:
  /// `split`'s images (N, 3, H, W) must be at least `settings.size` on both sides; throws
  /// Error otherwise. Keeps a reference: `split` must outlive the sampler.
  PatchSampler(const TensorSplit& split, PatchSettings settings);

  int64_t start_epoch(torch::Generator& generator) override;
  Batch batch(int64_t begin, int64_t end) const override;

  /// Top-left corners (y, x) of the epoch's patches, (N * per_image, 2), sample i of
  /// image i / per_image: for tests and pictures.
  const torch::Tensor& positions() const { return positions_; }

 private:
  const TensorSplit& split_;
  PatchSettings settings_;
  torch::Tensor positions_;  // (N * per_image, 2) int64
  torch::Tensor order_;      // permutation of the samples
};

}  // namespace bachlab::host
