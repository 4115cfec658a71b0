#pragma once
// Where in a photo the model finds each class: the photo beside one panel per class, each
// panel the photo in grey with that class's patch probabilities laid over it in colour (the
// mean over the patches covering a pixel; pixels no patch covers stay grey), a colour scale
// spanning the probabilities the figure shows (labelled, chance marked), and a title with
// the photo's true and predicted class. Whole-photo models have no map and get no figure. Drawn with OpenCV,
// like the other figures (host/report/plots.h).

#include "host/eval/photo_prediction.h"

#include <opencv2/core.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace bachlab::host {

/// One patch of a photo-level prediction: its rectangle in the photo's pixels and its class
/// probabilities (one per class, in class order). Whole-photo models give one patch, the
/// photo itself.
struct PatchScore {
  int64_t y = 0;
  int64_t x = 0;
  int64_t height = 0;
  int64_t width = 0;
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
  /// The photo before stain normalisation, the size of photo_rgb, drawn beside it; empty
  /// without stain normalisation.
  cv::Mat photo_as_taken_rgb;
  /// Which model(s) the probabilities are of, shown under the title; may be empty.
  std::string source;
  /// The side of one of photo_rgb's pixels in micrometres: a scale bar is drawn on the
  /// photo panels; 0 (unknown) draws none.
  double microns_per_pixel = 0;
};

/// A (3, H, W) photo, uint8 or float [0,1], as an RGB OpenCV image.
cv::Mat rgb_image(const torch::Tensor& photo);

/// Mean probability of `class_index` over the patches covering each pixel (float, the
/// photo's size); NaN where no patch lies. Throws Error if a patch leaves the photo or has
/// the wrong number of probabilities.
cv::Mat class_probability_map(const HeatmapInput& input, size_t class_index);

/// The figure (BGR), panels `panel_width` pixels wide. Throws Error on inconsistent input.
cv::Mat draw_heatmap(const HeatmapInput& input, int panel_width = 360);

/// The input for one photo of a photo-level prediction: `photo` is the image predicted
/// (uint8 or float [0,1], (3, H, W)), `patches` its grid as predict_photos() kept it, and
/// `patch_size` the grid's patch side (0: one patch, the whole photo).
HeatmapInput heatmap_input(const torch::Tensor& photo, const PhotoPatches& patches, int64_t patch_size,
                           const std::vector<std::string>& classes, const torch::Tensor& photo_probabilities,
                           const std::string& name, const std::string& true_class = "");

}  // namespace bachlab::host
