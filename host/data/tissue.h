#pragma once
// Tissue versus glass: tissue is any pixel that is not near-white, some channel below
// kGlassLevel (220 of 255). BACH's glass background is bright and unsaturated in all three
// channels; H&E stained tissue, even pale stroma, has at least one channel (green, under
// eosin) below that. Patch sampling (host/train/patch_sampler.h) and photo-level
// prediction (host/eval/photo_prediction.h) both use it.

#include <torch/torch.h>

namespace bachlab::host {

/// A channel value below this marks a pixel as tissue (not glass).
inline constexpr int kGlassLevel = 220;

/// Share of tissue pixels of a uint8 (3, h, w) image or patch; 1 for float images (their
/// scale is not known, so every pixel counts).
double tissue_fraction(const torch::Tensor& image);

}  // namespace bachlab::host
