#pragma once
// Photos to tensors: decode and resize on every core, once. The result is cached on disk
// keyed by every photo's (path, size, mtime) and every parameter that shapes the pixels,
// so the second run of any experiment on the same data loads its tensors in a fraction of
// a second. A cache file is trusted only if its header, key and checksum all match;
// otherwise it is rebuilt (and the reason is said).

#include "host/data/data_config.h"
#include "host/data/dataset.h"
#include "host/data/stain.h"

#include <torch/torch.h>

#include <array>
#include <filesystem>
#include <optional>
#include <string>

namespace bachlab::host {

struct PreparedData {
  /// uint8 (N, 3, H, W), RGB, contiguous: S x S with image_size, the photos' common size
  /// times `scale` otherwise.
  torch::Tensor images;
  /// int64 (N): class index of each image.
  torch::Tensor labels;
  /// True if the tensors were loaded from the cache without decoding.
  bool from_cache = false;
  /// The photos actually in the tensors, row for row (the input minus photos skipped
  /// because they could not be decoded with on_bad_image = "skip"); its `skipped` lists
  /// every photo left out, at discovery or while decoding. Splits index into this.
  Dataset dataset;
  /// The cache file read or written; empty if caching failed (see cache_note).
  std::filesystem::path cache_file;
  /// Why the cache was or was not used: "loaded from cache", "no cache yet", "cache is
  /// stale: <file> changed", "cache was corrupt (<why>)", "cache not written: <why>"; when
  /// stain normalisation left photos with too little tissue as they were, it says how many.
  std::string cache_note;
  /// The stain target the images were normalised to; unset for stain_normalize = "none".
  std::optional<StainTarget> stain_target;
  /// Photos that stain normalisation left as they were (too little tissue to estimate their
  /// stains), counted when the normalised set is built (0 when it came from the cache).
  size_t stain_unchanged = 0;
};

/// Bumped whenever decoding or resizing changes what pixels come out, so caches made by
/// an older build are rebuilt rather than trusted.
inline constexpr int kPrepareVersion = 1;

/// Decodes and resizes every photo of `dataset` (or loads them from the cache): to
/// image_size x image_size, or by `scale` keeping the aspect ratio (INTER_AREA when
/// shrinking). With stain_normalize other than "none" each resized photo is then normalised
/// to `stain_target`, or - when none is given - to the target fitted on stain_reference;
/// with neither it throws (fit one on the training photos with fit_stain_target() first).
/// The normalised set is cached under a key holding the target, beside the unnormalised
/// set it is computed from. Throws Error listing every photo that cannot be decoded unless
/// on_bad_image = "skip" (at `scale`, a photo whose size differs from the first photo's
/// counts as one), and if no photo is left.
PreparedData prepare_dataset(const Dataset& dataset, const DataConfig& config,
                             const std::optional<StainTarget>& stain_target = std::nullopt);

/// The cache file prepare_dataset() uses for this dataset, config and target.
std::filesystem::path prepared_cache_file(const Dataset& dataset, const DataConfig& config,
                                          const std::optional<StainTarget>& stain_target = std::nullopt);

/// The target fitted on the config's stain_reference photo, prepared (resized) as the set
/// is. Throws Error naming the photo if it cannot be decoded or shows too little tissue.
StainTarget fit_stain_reference(const DataConfig& config);

/// One photo exactly as prepare_dataset() prepares it (decode, resize or rescale, stain
/// normalisation to `stain_target` when the config asks for it): uint8 (3, H, W).
torch::Tensor preprocess_photo(const std::filesystem::path& file, const DataConfig& config,
                               const std::optional<StainTarget>& stain_target = std::nullopt);

/// Per-channel statistics that to_float_batch() removes. For "unit" mean 0 and std 1,
/// which leaves pixels in [0,1] as the study had them.
struct Normalization {
  std::array<float, 3> mean{0.f, 0.f, 0.f};
  std::array<float, 3> std{1.f, 1.f, 1.f};
};

/// Statistics of `uint8_images` (N,3,H,W) scaled to [0,1], exact (counted per intensity),
/// for normalize = "standardize"; unit statistics for "unit". Pass the training split only.
Normalization fit_normalization(const torch::Tensor& uint8_images, const DataConfig& config);

/// float32 (N,3,H,W): (x / 255 - mean[c]) / std[c]. The trainer calls it per batch, so the
/// whole set never has to exist as floats.
torch::Tensor to_float_batch(const torch::Tensor& uint8_images, const Normalization& normalization);

/// (N, classes) float32 one-hot rows, for metrics that want them (AUROC).
torch::Tensor one_hot_labels(const torch::Tensor& labels, int64_t classes);

}  // namespace bachlab::host
