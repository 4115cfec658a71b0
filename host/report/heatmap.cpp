#include "host/report/heatmap.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

namespace bachlab::host {

namespace {

constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;
constexpr double kOverlayAlpha = 0.6;
constexpr auto kColorMap = cv::COLORMAP_INFERNO;  // perceptually even, dark 0 to yellow 1

void check_input(const HeatmapInput& input) {
  if (input.photo_rgb.empty() || input.photo_rgb.type() != CV_8UC3)
    throw Error("heatmap of " + input.name + ": the photo must be an 8-bit RGB image");
  if (input.classes.empty()) throw Error("heatmap of " + input.name + ": no class names");
  if (input.photo_probabilities.size() != input.classes.size())
    throw Error(fmt::format("heatmap of {}: {} photo probabilities for {} classes", input.name,
                            input.photo_probabilities.size(), input.classes.size()));
  for (const auto& p : input.patches) {
    if (p.probabilities.size() != input.classes.size())
      throw Error(fmt::format("heatmap of {}: a patch at ({}, {}) has {} probabilities for {} classes", input.name,
                              p.y, p.x, p.probabilities.size(), input.classes.size()));
    if (p.height <= 0 || p.width <= 0 || p.y < 0 || p.x < 0 || p.y + p.height > input.photo_rgb.rows ||
        p.x + p.width > input.photo_rgb.cols)
      throw Error(fmt::format("heatmap of {}: the {}x{} patch at ({}, {}) leaves the {}x{} photo", input.name,
                              p.width, p.height, p.y, p.x, input.photo_rgb.cols, input.photo_rgb.rows));
  }
}

// Sum of the class's probability and number of patches over each pixel (float, photo size).
void accumulate(const HeatmapInput& input, size_t class_index, cv::Mat& sum, cv::Mat& count) {
  sum = cv::Mat::zeros(input.photo_rgb.size(), CV_32F);
  count = cv::Mat::zeros(input.photo_rgb.size(), CV_32F);
  for (const auto& p : input.patches) {
    const cv::Rect square(static_cast<int>(p.x), static_cast<int>(p.y), static_cast<int>(p.width),
                          static_cast<int>(p.height));
    // A NaN probability (a diverged model) would poison every overlapping patch; it counts
    // as no information rather than as a value.
    const float value = p.probabilities[class_index];
    if (!std::isfinite(value)) continue;
    sum(square) += value;
    count(square) += 1.0f;
  }
}

void text(cv::Mat& image, const std::string& s, cv::Point at, double scale, int thickness = 1) {
  cv::putText(image, s, at, kFont, scale, cv::Scalar(0, 0, 0), thickness, cv::LINE_AA);
}

// The colour scale: a vertical bar from `hi` (top) to `lo` (bottom), labelled at both ends
// and the middle, with chance (1 / classes) marked when it lies in the range.
void draw_scale(cv::Mat& image, cv::Rect bar, double lo, double hi, double chance) {
  cv::Mat ramp(bar.height, 1, CV_8U);
  for (int row = 0; row < bar.height; ++row)
    ramp.at<uint8_t>(row) = cv::saturate_cast<uint8_t>(255.0 * (bar.height - 1 - row) / std::max(1, bar.height - 1));
  cv::Mat colored;
  cv::applyColorMap(ramp, colored, kColorMap);
  cv::resize(colored, image(bar), bar.size(), 0, 0, cv::INTER_NEAREST);
  cv::rectangle(image, bar, cv::Scalar(0, 0, 0), 1);
  auto tick = [&](double v, const std::string& label) {
    const int y = bar.y + static_cast<int>(std::lround((hi - v) / (hi - lo) * (bar.height - 1)));
    cv::line(image, {bar.x + bar.width, y}, {bar.x + bar.width + 5, y}, cv::Scalar(0, 0, 0), 1);
    text(image, label, {bar.x + bar.width + 8, y + 5}, 0.45);
  };
  // Three decimals for a narrow range, so its labels differ.
  const int digits = hi - lo < 0.1 ? 3 : 2;
  for (double v : {lo, (lo + hi) / 2, hi}) tick(v, fmt::format("{:.{}f}", v, digits));
  if (chance > lo && chance < hi && std::abs(chance - (lo + hi) / 2) > 0.08 * (hi - lo))
    tick(chance, fmt::format("{:.{}f} chance", chance, digits));
  text(image, "probability", {bar.x - 10, bar.y - 26}, 0.45);
  text(image, "(this figure)", {bar.x - 10, bar.y - 10}, 0.4);
}

// A scale bar in the panel's bottom-left corner: the longest of 1, 2, 5 x 10^k micrometres
// that fits a quarter of the panel, black on a white box, labelled (OpenCV's fonts have no
// "µ", so "um").
void draw_scale_bar(cv::Mat& panel, double microns_per_pixel) {
  const double most = 0.25 * panel.cols * microns_per_pixel;
  double length = 0;
  for (double decade = 1e-3; decade <= most; decade *= 10)
    for (double step : {1.0, 2.0, 5.0})
      if (step * decade <= most) length = step * decade;
  const int pixels = static_cast<int>(std::lround(length / microns_per_pixel));
  if (pixels < 4) return;
  const std::string label = fmt::format("{:g} um", length);
  int baseline = 0;
  const cv::Size label_size = cv::getTextSize(label, kFont, 0.4, 1, &baseline);
  const int margin = 6, box_width = std::max(pixels, label_size.width) + 2 * margin;
  const int box_height = label_size.height + 4 + 4 + 2 * margin;
  const cv::Rect box(margin, panel.rows - margin - box_height, box_width, box_height);
  if (box.x + box.width > panel.cols || box.y < 0) return;
  cv::rectangle(panel, box, cv::Scalar(255, 255, 255), cv::FILLED);
  const int bar_y = box.y + box.height - margin - 4;
  cv::rectangle(panel, cv::Rect(box.x + margin, bar_y, pixels, 4), cv::Scalar(0, 0, 0), cv::FILLED);
  cv::putText(panel, label, {box.x + margin, bar_y - 4}, kFont, 0.4, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
}

}  // namespace

cv::Mat class_probability_map(const HeatmapInput& input, size_t class_index) {
  check_input(input);
  if (class_index >= input.classes.size())
    throw Error(fmt::format("heatmap of {}: class {} of {}", input.name, class_index, input.classes.size()));
  cv::Mat sum, count;
  accumulate(input, class_index, sum, count);
  cv::Mat mean(sum.size(), CV_32F, cv::Scalar(std::numeric_limits<float>::quiet_NaN()));
  cv::divide(sum, count, mean);
  mean.setTo(std::numeric_limits<float>::quiet_NaN(), count == 0);
  return mean;
}

cv::Mat draw_heatmap(const HeatmapInput& input, int panel_width) {
  check_input(input);
  const size_t classes = input.classes.size();
  const int panel_height = std::max(1, static_cast<int>(std::lround(static_cast<double>(panel_width) *
                                                                    input.photo_rgb.rows / input.photo_rgb.cols)));
  const cv::Size panel_size(panel_width, panel_height);
  // The photo as taken (with stain normalisation), the photo as the model saw it, a panel
  // per class.
  const bool as_taken = !input.photo_as_taken_rgb.empty();
  const size_t photos = as_taken ? 2 : 1;
  const int columns = static_cast<int>(std::min<size_t>(3, classes + photos));
  const int rows = static_cast<int>((classes + photos + columns - 1) / columns);
  const int gap = 12, caption = 28, title = input.source.empty() ? 46 : 70, scale_width = 170;
  cv::Mat image(title + rows * (caption + panel_height + gap),
                gap + columns * (panel_width + gap) + scale_width, CV_8UC3, cv::Scalar(255, 255, 255));

  // Shrinking by area keeps each panel's pixel the mean of the photo's pixels under it.
  cv::Mat photo_bgr, small_bgr, small_grey;
  cv::cvtColor(input.photo_rgb, photo_bgr, cv::COLOR_RGB2BGR);
  cv::resize(photo_bgr, small_bgr, panel_size, 0, 0, cv::INTER_AREA);
  cv::cvtColor(small_bgr, small_grey, cv::COLOR_BGR2GRAY);
  cv::cvtColor(small_grey, small_grey, cv::COLOR_GRAY2BGR);

  const size_t predicted = static_cast<size_t>(
      std::max_element(input.photo_probabilities.begin(), input.photo_probabilities.end()) -
      input.photo_probabilities.begin());
  std::string heading = input.name;
  if (!input.true_class.empty()) heading += "  true: " + input.true_class;
  heading += fmt::format("  predicted: {} ({:.2f})", input.classes[predicted], input.photo_probabilities[predicted]);
  text(image, heading, {gap, 30}, 0.6, 2);
  if (!input.source.empty()) text(image, "probabilities of " + input.source, {gap, 54}, 0.45);

  auto panel_origin = [&](int index) {
    return cv::Point(gap + (index % columns) * (panel_width + gap),
                     title + (index / columns) * (caption + panel_height + gap) + caption);
  };
  // Every panel shows the photo at one scale: the bar goes on the photo panels.
  const double microns_per_panel_pixel =
      input.microns_per_pixel * input.photo_rgb.cols / static_cast<double>(panel_width);
  auto place = [&](int index, const cv::Mat& panel, const std::string& label) {
    const cv::Point origin = panel_origin(index);
    cv::Mat view = image(cv::Rect(origin, panel_size));
    panel.copyTo(view);
    if (index < static_cast<int>(photos) && microns_per_panel_pixel > 0) draw_scale_bar(view, microns_per_panel_pixel);
    cv::rectangle(image, cv::Rect(origin, panel_size), cv::Scalar(0, 0, 0), 1);
    text(image, label, {origin.x, origin.y - 8}, 0.5);
  };
  if (as_taken) {
    cv::Mat taken_bgr, small_taken;
    cv::cvtColor(input.photo_as_taken_rgb, taken_bgr, cv::COLOR_RGB2BGR);
    cv::resize(taken_bgr, small_taken, panel_size, 0, 0, cv::INTER_AREA);
    place(0, small_taken, "photo as taken");
  }
  place(static_cast<int>(photos) - 1, small_bgr,
        fmt::format("{} ({} patches)", as_taken ? "stain-normalised" : "photo",
                    input.patches.size()));

  // Each class's mean patch probability per panel pixel; the colours span the range these
  // take in this figure (at least 0.02 wide), so a model whose patches all sit near chance
  // still shows where it leans, and the scale says which range that is.
  std::vector<cv::Mat> means(classes), counts(classes);
  double lo = 1.0, hi = 0.0;
  for (size_t c = 0; c < classes; ++c) {
    cv::Mat sum, count, small_sum;
    accumulate(input, c, sum, count);
    cv::resize(sum, small_sum, panel_size, 0, 0, cv::INTER_AREA);
    cv::resize(count, counts[c], panel_size, 0, 0, cv::INTER_AREA);
    means[c] = small_sum / cv::max(counts[c], 1e-6f);
    double a = 0, b = 0;
    cv::minMaxLoc(means[c], &a, &b, nullptr, nullptr, counts[c] >= 0.5f);
    if (cv::countNonZero(counts[c] >= 0.5f) > 0) lo = std::min(lo, a), hi = std::max(hi, b);
  }
  if (hi < lo) lo = 0.0, hi = 1.0;  // no patch covers a pixel: the full range
  if (hi - lo < 0.02) {
    const double middle = (lo + hi) / 2;
    lo = std::max(0.0, middle - 0.01);
    hi = std::min(1.0, lo + 0.02);
    lo = hi - 0.02;
  }
  for (size_t c = 0; c < classes; ++c) {
    const cv::Mat& small_count = counts[c];
    cv::Mat levels;
    means[c].convertTo(levels, CV_8U, 255.0 / (hi - lo), -255.0 * lo / (hi - lo));
    cv::Mat colored, blended;
    cv::applyColorMap(levels, colored, kColorMap);
    cv::addWeighted(colored, kOverlayAlpha, small_grey, 1.0 - kOverlayAlpha, 0.0, blended);
    // Pixels mostly outside every patch keep the plain grey photo.
    small_grey.copyTo(blended, small_count < 0.5f);
    place(static_cast<int>(c + photos), blended,
          fmt::format("{}: photo p = {:.2f}", input.classes[c], input.photo_probabilities[c]));
  }

  const cv::Point first = panel_origin(0);
  draw_scale(image, cv::Rect(gap + columns * (panel_width + gap) + 30, first.y, 24, panel_height), lo, hi,
             1.0 / static_cast<double>(classes));
  return image;
}

cv::Mat rgb_image(const torch::Tensor& photo) {
  torch::Tensor pixels = photo.scalar_type() == torch::kUInt8 ? photo : (photo.clamp(0, 1) * 255).round().to(torch::kUInt8);
  pixels = pixels.permute({1, 2, 0}).contiguous();  // H, W, 3: OpenCV's interleaved layout
  return cv::Mat(static_cast<int>(pixels.size(0)), static_cast<int>(pixels.size(1)), CV_8UC3, pixels.data_ptr<uint8_t>())
      .clone();
}

HeatmapInput heatmap_input(const torch::Tensor& photo, const PhotoPatches& patches, int64_t patch_size,
                           const std::vector<std::string>& classes, const torch::Tensor& photo_probabilities,
                           const std::string& name, const std::string& true_class) {
  if (photo.dim() != 3 || photo.size(0) != 3)
    throw Error(fmt::format("heatmap of {}: expected a (3, H, W) photo, got {}", name, fmt::join(photo.sizes(), "x")));
  HeatmapInput input;
  input.name = name;
  input.true_class = true_class;
  input.classes = classes;
  input.photo_rgb = rgb_image(photo);
  torch::Tensor probabilities = photo_probabilities.to(torch::kFloat32).contiguous();
  input.photo_probabilities.assign(probabilities.data_ptr<float>(), probabilities.data_ptr<float>() + probabilities.numel());
  const torch::Tensor positions = patches.positions.to(torch::kInt64).contiguous();
  const torch::Tensor scores = patches.probabilities.to(torch::kFloat32).contiguous();
  for (int64_t i = 0; i < positions.size(0); ++i) {
    PatchScore score;
    score.y = positions[i][0].item<int64_t>();
    score.x = positions[i][1].item<int64_t>();
    score.height = patch_size > 0 ? patch_size : photo.size(1);
    score.width = patch_size > 0 ? patch_size : photo.size(2);
    score.probabilities.assign(scores[i].data_ptr<float>(), scores[i].data_ptr<float>() + scores.size(1));
    input.patches.push_back(std::move(score));
  }
  return input;
}

}  // namespace bachlab::host
