#pragma once
// Where in a photo the model finds each class: the photo beside one panel per class, each
// panel the photo in grey with that class's patch probabilities laid over it in colour (the
// mean over the patches covering a pixel; pixels no patch covers stay grey), a colour scale
// from 0 to 1, and a title with the photo's true and predicted class. Drawn with OpenCV,
// like the other figures (host/report/plots.h).

#include <opencv2/core.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace bachlab::host {

/// One patch of a photo-level prediction: its square in the photo's pixels and its class
/// probabilities (one per class, in class order).
struct PatchScore {
  int64_t y = 0;
  int64_t x = 0;
  int64_t size = 0;
  std::vector<float> probabilities;
};

struct HeatmapInput {
  /// The photo as the model saw it (RGB, 8-bit, 3 channels): the patches' coordinates are
  /// in its pixels.
  cv::Mat photo_rgb;
  std::vector<PatchScore> patches;
  std::vector<std::string> classes;
  /// Shown in the title; photo_probabilities gives the predicted class. `true_class` may be
  /// empty (a photo without a label).
  std::string name;
  std::string true_class;
  std::vector<float> photo_probabilities;
};

/// Mean probability of `class_index` over the patches covering each pixel (float, the
/// photo's size); NaN where no patch lies. Throws Error if a patch leaves the photo or has
/// the wrong number of probabilities.
cv::Mat class_probability_map(const HeatmapInput& input, size_t class_index);

/// The figure (BGR), panels `panel_width` pixels wide. Throws Error on inconsistent input.
cv::Mat draw_heatmap(const HeatmapInput& input, int panel_width = 360);

}  // namespace bachlab::host
