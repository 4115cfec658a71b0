// The heatmap figure: the per-class map is the mean over the patches covering each pixel,
// uncovered pixels stay uncoloured, and bad input is refused by name.
#include "host/report/heatmap.h"

#include <bachlab/sdk/error.h>

#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

#include <cmath>

namespace bachlab::host {
namespace {

// A 40x60 grey photo with two 20 px patches side by side and one overlapping the first; the
// right third of the photo is covered by no patch.
HeatmapInput two_class_input() {
  HeatmapInput input;
  input.photo_rgb = cv::Mat(40, 60, CV_8UC3, cv::Scalar(200, 180, 190));
  input.classes = {"Benign", "InSitu"};
  input.name = "photo.tif";
  input.true_class = "InSitu";
  input.photo_probabilities = {0.3f, 0.7f};
  input.patches = {{0, 0, 20, 20, {0.9f, 0.1f}}, {0, 20, 20, 20, {0.1f, 0.9f}}, {10, 10, 20, 20, {0.5f, 0.5f}}};
  return input;
}

TEST(Heatmap, ClassMapIsTheMeanOfTheCoveringPatches) {
  const cv::Mat map = class_probability_map(two_class_input(), 1);
  ASSERT_EQ(map.size(), cv::Size(60, 40));
  EXPECT_FLOAT_EQ(map.at<float>(5, 5), 0.1f);                   // first patch only
  EXPECT_FLOAT_EQ(map.at<float>(5, 25), 0.9f);                  // second patch only
  EXPECT_FLOAT_EQ(map.at<float>(15, 15), (0.1f + 0.5f) / 2);    // first and third
  EXPECT_FLOAT_EQ(map.at<float>(15, 25), (0.9f + 0.5f) / 2);    // second and third
  EXPECT_TRUE(std::isnan(map.at<float>(5, 50)));                // no patch
  EXPECT_TRUE(std::isnan(map.at<float>(35, 5)));                // below every patch
}

TEST(Heatmap, NonFiniteProbabilitiesAreLeftOutRatherThanSpread) {
  HeatmapInput input = two_class_input();
  input.patches[2].probabilities = {NAN, NAN};
  const cv::Mat map = class_probability_map(input, 0);
  EXPECT_FLOAT_EQ(map.at<float>(15, 15), 0.9f);
  EXPECT_TRUE(std::isnan(map.at<float>(25, 15)));  // covered only by the NaN patch
}

TEST(Heatmap, FigureColoursCoveredPixelsByProbabilityAndLeavesTheRestGrey) {
  HeatmapInput input = two_class_input();
  // One patch certain of InSitu over the left half, nothing over the right half.
  input.photo_rgb = cv::Mat(40, 80, CV_8UC3, cv::Scalar(128, 128, 128));
  input.patches = {{0, 0, 40, 40, {0.0f, 1.0f}}};
  const int panel = 80;  // the photo's own width: panel pixels are photo pixels
  const cv::Mat figure = draw_heatmap(input, panel);
  ASSERT_FALSE(figure.empty());
  // Panels: photo, Benign, InSitu in one row; each starts 12 px after the previous one.
  const int gap = 12, top = 46 + 28;
  auto pixel = [&](int panel_index, int y, int x) {
    return figure.at<cv::Vec3b>(top + y, gap + panel_index * (panel + gap) + x);
  };
  const cv::Vec3b benign_covered = pixel(1, 20, 10), insitu_covered = pixel(2, 20, 10);
  const cv::Vec3b insitu_uncovered = pixel(2, 20, 70);
  // Inferno at 1 is bright yellow (BGR: low blue, high red), at 0 near black.
  EXPECT_GT(insitu_covered[2], 180);
  EXPECT_LT(insitu_covered[0], insitu_covered[2]);
  EXPECT_LT(benign_covered[2], 100);
  EXPECT_EQ(insitu_uncovered, cv::Vec3b(128, 128, 128));
}

// Issue #21 item 5: probabilities near chance still show which patch leans where (the
// colours span the figure's range), and with stain normalisation the photo as taken comes
// first, with the model(s) named under the title.
TEST(Heatmap, NarrowProbabilitiesShowContrastAndThePhotoAsTakenComesFirst) {
  HeatmapInput input = two_class_input();
  input.photo_rgb = cv::Mat(40, 80, CV_8UC3, cv::Scalar(128, 128, 128));
  input.photo_as_taken_rgb = cv::Mat(40, 80, CV_8UC3, cv::Scalar(250, 20, 20));
  input.source = "the mean of the 5 fold models of runs/x";
  input.patches = {{0, 0, 40, 40, {0.49f, 0.51f}}, {0, 40, 40, 40, {0.51f, 0.49f}}};
  const int panel = 80;
  const cv::Mat figure = draw_heatmap(input, panel);
  // Panels: as taken, stain-normalised, Benign, InSitu; the title has a second line.
  const int gap = 12, top = 70 + 28;
  auto pixel = [&](int panel_index, int y, int x) {  // a panel of the first row
    return figure.at<cv::Vec3b>(top + y, gap + panel_index * (panel + gap) + x);
  };
  EXPECT_EQ(pixel(0, 20, 20), cv::Vec3b(20, 20, 250));  // RGB (250, 20, 20) as BGR
  EXPECT_EQ(pixel(1, 20, 20), cv::Vec3b(128, 128, 128));
  // Benign (first row, third panel): 0.49 on the left, 0.51 on the right, the ends of the
  // figure's range.
  const cv::Vec3b benign_left = pixel(2, 20, 20), benign_right = pixel(2, 20, 60);
  EXPECT_GT(std::abs(int(benign_right[2]) - int(benign_left[2])), 100)
      << "0.49 and 0.51 look alike: the colours do not span the figure's range";
}

// With the pixel size known, the photo panel carries a scale bar (black, bottom left, on a
// white box); a figure of unknown scale carries none.
TEST(Heatmap, APhotoOfKnownPixelSizeGetsAScaleBar) {
  HeatmapInput input = two_class_input();
  input.photo_rgb = cv::Mat(100, 200, CV_8UC3, cv::Scalar(128, 128, 128));
  input.patches = {{0, 0, 100, 100, {0.4f, 0.6f}}};
  const int panel = 200, gap = 12, top = 46 + 28, panel_height = 100;
  auto black_pixels = [&](const cv::Mat& figure, int panel_index) {
    // Inside the panel's 1 px black frame.
    const cv::Rect corner(gap + panel_index * (panel + gap) + 1, top + panel_height / 2, panel / 2, panel_height / 2 - 1);
    cv::Mat grey;
    cv::cvtColor(figure(corner), grey, cv::COLOR_BGR2GRAY);
    return cv::countNonZero(grey < 30);
  };
  EXPECT_EQ(black_pixels(draw_heatmap(input, panel), 0), 0);
  // 2 um per pixel: a quarter of the panel is 100 um, so the bar is 50 px and 4 px thick.
  input.microns_per_pixel = 2.0;
  const cv::Mat figure = draw_heatmap(input, panel);
  EXPECT_GE(black_pixels(figure, 0), 50 * 4);
  EXPECT_LT(black_pixels(figure, 0), 50 * 4 + 200);  // the bar and its label, no more
  cv::Mat bar_row;
  // The bar's rows: 6 px margin and 6 px padding above the panel's bottom edge.
  cv::cvtColor(figure.row(top + panel_height - 6 - 6 - 2).colRange(gap + 1, gap + panel - 1), bar_row,
               cv::COLOR_BGR2GRAY);
  EXPECT_EQ(cv::countNonZero(bar_row < 30), 50);
}

TEST(Heatmap, RefusesPatchesOutsideThePhotoAndWrongClassCounts) {
  HeatmapInput outside = two_class_input();
  outside.patches.push_back({30, 50, 20, 20, {0.5f, 0.5f}});
  try {
    draw_heatmap(outside);
    FAIL() << "a patch outside the photo was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("leaves the 60x40 photo"), std::string::npos) << e.what();
  }
  HeatmapInput wrong = two_class_input();
  wrong.patches[0].probabilities = {1.0f};
  EXPECT_THROW(class_probability_map(wrong, 0), Error);
}

TEST(Heatmap, InputFromAPhotoPredictionKeepsPixelsPositionsAndAWholePhotoPatch) {
  // A (3, 2, 4) uint8 photo whose red channel counts 0..7 row by row.
  torch::Tensor photo = torch::zeros({3, 2, 4}, torch::kUInt8);
  photo[0] = torch::arange(8, torch::kUInt8).view({2, 4});
  PhotoPatches grid;
  grid.positions = torch::tensor({{0, 0}, {0, 2}}, torch::kLong);
  grid.probabilities = torch::tensor({{0.25f, 0.75f}, {1.0f, 0.0f}});
  HeatmapInput input = heatmap_input(photo, grid, 2, {"A", "B"}, torch::tensor({0.6, 0.4}), "p.png", "A");
  ASSERT_EQ(input.photo_rgb.size(), cv::Size(4, 2));
  EXPECT_EQ(input.photo_rgb.at<cv::Vec3b>(1, 2)[0], 6);  // RGB order kept: red is channel 0
  ASSERT_EQ(input.patches.size(), 2u);
  EXPECT_EQ(input.patches[1].x, 2);
  EXPECT_EQ(input.patches[1].height, 2);
  EXPECT_FLOAT_EQ(input.patches[0].probabilities[1], 0.75f);
  EXPECT_FLOAT_EQ(input.photo_probabilities[0], 0.6f);

  // Without patches the one "patch" is the whole, non-square photo.
  grid.positions = torch::tensor({{0, 0}}, torch::kLong);
  grid.probabilities = torch::tensor({{0.5f, 0.5f}});
  input = heatmap_input(photo, grid, 0, {"A", "B"}, torch::tensor({0.5, 0.5}), "p.png");
  EXPECT_EQ(input.patches[0].height, 2);
  EXPECT_EQ(input.patches[0].width, 4);
  EXPECT_NO_THROW(draw_heatmap(input, 40));
}

}  // namespace
}  // namespace bachlab::host
