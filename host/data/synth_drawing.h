#pragma once
// The pictures of the built-in synthetic H&E dataset, drawn procedurally (host/data/synth.h
// makes the BACH-shaped dataset folder of them). Stain densities are painted first
// (haematoxylin for nuclei, eosin for stroma and cytoplasm) and only then turned into RGB
// with per-image random stain vectors, so colour varies alike in every class and only the
// drawn structure tells the classes apart. See docs/synthetic-data.md.

#include <opencv2/core.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace bachlab::host {

/// Bumped whenever the drawing changes, so an old dataset is never mistaken for a new one.
inline constexpr int kSynthGeneratorVersion = 1;

/// The four BACH classes in label order: {"Normal", "Benign", "InSitu", "Invasive"}. A
/// class index below is an index into this list.
const std::vector<std::string>& bach_classes();

/// Throws Error naming the classes unless `class_index` is 0..3.
void check_bach_class_index(int class_index);

/// Throws OptionError ("size") unless width and height are both in 8..16384, and
/// OptionError ("variant") unless `variant` is "default" or "nuclear": what the drawing
/// functions check, for a caller that checks its options before it draws anything.
void check_synthetic_drawing(int width, int height, const std::string& variant);

/// One drawn image (CV_8UC3, RGB order) of `variant` ("default" or "nuclear").
/// Deterministic in its arguments. Throws Error for a class index outside 0..3, and
/// OptionError for a size outside 8..16384 or another variant.
cv::Mat draw_synthetic_image(int class_index, int width, int height, uint64_t seed,
                             const std::string& variant = "default");

/// An image with the ground truth of its structure, for tests and anyone measuring the
/// generator: masks are CV_8UC1, 255 where a nucleus (of any cell) or a gland/duct lumen
/// was drawn, at the image's size.
struct SynthTissue {
  cv::Mat image;
  cv::Mat nuclei;
  cv::Mat lumen;
};

/// draw_synthetic_image() with its masks; `image` is identical to that function's result.
SynthTissue draw_synthetic_tissue(int class_index, int width, int height, uint64_t seed,
                                  const std::string& variant = "default");

/// The size of one pixel of a drawn image, in micrometres: a BACH photo's 0.42 um at
/// 2048x1536, larger for smaller images (the same field sampled more coarsely) except where
/// the nuclear variant keeps its magnification. What the dataset's TIFFs record as their
/// resolution.
double synthetic_pixel_microns(int width, int height, const std::string& variant);

}  // namespace bachlab::host
