#pragma once
// Photos to tensors: decode and resize on every core, once. The result is cached on disk
// keyed by every photo's (path, size, mtime) and every parameter that shapes the pixels,
// so the second run of any experiment on the same data loads its tensors in a fraction of
// a second. A cache file is trusted only if its header, key and checksum all match;
// otherwise it is rebuilt (and the reason is said).

#include "host/data/data_config.h"
#include "host/data/dataset.h"

#include <torch/torch.h>

#include <array>
#include <filesystem>
#include <string>

namespace bachlab::host {

struct PreparedData {
  /// uint8 (N, 3, S, S), RGB.
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
  /// stale: <file> changed", "cache was corrupt (<why>)", "cache not written: <why>".
  std::string cache_note;
};

/// Bumped whenever decoding or resizing changes what pixels come out, so caches made by
/// an older build are rebuilt rather than trusted.
inline constexpr int kPrepareVersion = 1;

/// Decodes and resizes every photo of `dataset` (or loads them from the cache). Throws
/// Error listing every photo that cannot be decoded unless on_bad_image = "skip", and if
/// no photo is left.
PreparedData prepare_dataset(const Dataset& dataset, const DataConfig& config);

/// The cache file prepare_dataset() uses for this dataset and config.
std::filesystem::path prepared_cache_file(const Dataset& dataset, const DataConfig& config);

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
