#pragma once
// The study's first step as a command: what is in the dataset before any model sees it.
// Class balance, image sizes and modes, random samples, the mean image per class, the
// Normal mean against the other classes, and per-class channel histograms, as PNGs plus
// one report in Markdown and in self-contained HTML.

#include "host/data/dataset.h"
// base64_encode, which the report uses for its inlined pictures, lives there now.
#include "host/util/html.h"

#include <opencv2/core.hpp>

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace bachlab::host {

struct ExploreOptions {
  /// Folder the report and pictures are written to (created if missing).
  std::filesystem::path out;
  /// Random photos shown per class. Default: 8.
  int samples_per_class = 8;
  /// Width of the mean images; the height follows the most common aspect. Default: 256.
  int mean_width = 256;
  /// Which photos are sampled. Default: 0.
  uint64_t seed = 0;
  /// Decoding threads; 0 = every core.
  int workers = 0;
};

/// What explore_dataset() found, beyond the files it wrote.
struct ExploreSummary {
  std::vector<int64_t> class_counts;
  /// "WxH" -> photos of that size.
  std::vector<std::pair<std::string, int64_t>> sizes;
  bool one_size = false;
  /// Photos that could not be decoded, plus the dataset's own skipped list.
  std::vector<std::string> problems;
  /// Every file written, report.md and report.html last.
  std::vector<std::filesystem::path> files;
};

/// The top of a channel-histogram picture's y axis (in the shares' unit): 10% above the
/// largest share among values 0..254. The bright background piles up at 255; scaling to
/// that spike would flatten every other value, so it is drawn clipped, its height written.
double histogram_scale(const std::array<std::array<double, 256>, 3>& shares);

/// One class's histogram figure (RGB): the share of its pixels at each value per channel,
/// each channel's curve in its own colour, axes, legend, the 255 spike clipped.
cv::Mat histogram_panel(const std::string& title, const std::array<std::array<uint64_t, 256>, 3>& counts);

/// Decodes every photo once (on every core, one full-size photo per worker in memory),
/// writes the pictures and report.md / report.html to options.out. A photo that cannot be
/// decoded is listed under "Problems" in the report, not fatal: finding those is part of
/// exploring. Throws OptionError ("out") if the output folder cannot be made, Error if no
/// photo decodes.
ExploreSummary explore_dataset(const Dataset& dataset, const ExploreOptions& options);


}  // namespace bachlab::host
