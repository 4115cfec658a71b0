#include "host/report/plots.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace bachlab::host {

namespace {

const cv::Scalar kBlack(0, 0, 0);
const cv::Scalar kGrid(225, 225, 225);
constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;

void text(cv::Mat& image, const std::string& s, cv::Point at, double scale, const cv::Scalar& color,
          int thickness = 1, double align_x = 0.0, double align_y = 0.0) {
  int baseline = 0;
  cv::Size size = cv::getTextSize(s, kFont, scale, thickness, &baseline);
  cv::Point origin(at.x - static_cast<int>(align_x * size.width), at.y + static_cast<int>(align_y * size.height));
  cv::putText(image, s, origin, kFont, scale, color, thickness, cv::LINE_AA);
}

std::string tick_label(double value, double step) {
  char buffer[32];
  int decimals = step >= 1 ? 0 : std::min(4, static_cast<int>(std::ceil(-std::log10(step))));
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  return buffer;
}

// A "nice" tick step (1, 2 or 5 times a power of ten) giving about `count` ticks.
double nice_step(double range, int count) {
  double raw = range / count;
  double power = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * power) return m * power;
  return 10 * power;
}

}  // namespace

cv::Mat draw_learning_curve(const std::string& title, const std::string& y_label, const std::vector<Series>& series,
                            int width, int height) {
  cv::Mat image(height, width, CV_8UC3, cv::Scalar(255, 255, 255));
  const int left = 80, right = 30, top = 50, bottom = 60;
  const cv::Rect plot(left, top, width - left - right, height - top - bottom);

  size_t epochs = 0;
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& s : series) {
    epochs = std::max(epochs, s.values.size());
    for (double v : s.values)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  }
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  if (hi - lo < 1e-9) lo -= 0.5, hi += 0.5;
  const double pad = (hi - lo) * 0.05;
  lo -= pad;
  hi += pad;
  const double step = nice_step(hi - lo, 6);
  const double first_tick = std::ceil(lo / step) * step;

  auto x_of = [&](double epoch) {
    return plot.x + (epochs <= 1 ? plot.width / 2.0 : (epoch - 1) * plot.width / (epochs - 1.0));
  };
  auto y_of = [&](double v) { return plot.y + plot.height - (v - lo) / (hi - lo) * plot.height; };

  for (double v = first_tick; v <= hi + 1e-12; v += step) {
    int y = static_cast<int>(std::lround(y_of(v)));
    cv::line(image, {plot.x, y}, {plot.x + plot.width, y}, kGrid, 1);
    text(image, tick_label(v, step), {plot.x - 8, y}, 0.45, kBlack, 1, 1.0, 0.5);
  }
  const size_t epoch_step = std::max<size_t>(1, static_cast<size_t>(nice_step(std::max<size_t>(epochs, 2), 10)));
  for (size_t e = 1; e <= epochs; e += (e == 1 && epoch_step > 1 ? epoch_step - 1 : epoch_step)) {
    int x = static_cast<int>(std::lround(x_of(static_cast<double>(e))));
    cv::line(image, {x, plot.y + plot.height}, {x, plot.y + plot.height + 5}, kBlack, 1);
    text(image, std::to_string(e), {x, plot.y + plot.height + 10}, 0.45, kBlack, 1, 0.5, 1.0);
  }
  cv::rectangle(image, plot, kBlack, 1);
  text(image, title, {width / 2, 15}, 0.7, kBlack, 2, 0.5, 1.0);
  text(image, "epoch", {plot.x + plot.width / 2, height - 12}, 0.55, kBlack, 1, 0.5, 0.0);
  text(image, y_label, {8, plot.y - 12}, 0.55, kBlack, 1, 0.0, 0.0);

  int legend_y = plot.y + 18;
  for (const auto& s : series) {
    std::vector<cv::Point> run;
    auto flush = [&] {
      if (run.size() > 1) cv::polylines(image, run, false, s.color, 2, cv::LINE_AA);
      run.clear();
    };
    for (size_t i = 0; i < s.values.size(); ++i) {
      if (!std::isfinite(s.values[i])) {
        flush();
        continue;
      }
      cv::Point p(static_cast<int>(std::lround(x_of(i + 1.0))), static_cast<int>(std::lround(y_of(s.values[i]))));
      cv::circle(image, p, 3, s.color, cv::FILLED, cv::LINE_AA);
      run.push_back(p);
    }
    flush();
    const int lx = plot.x + plot.width - 150;
    cv::line(image, {lx, legend_y}, {lx + 25, legend_y}, s.color, 2, cv::LINE_AA);
    text(image, s.name, {lx + 32, legend_y}, 0.5, kBlack, 1, 0.0, 0.5);
    legend_y += 22;
  }
  return image;
}

cv::Mat draw_confusion_matrix(const std::vector<std::vector<int64_t>>& matrix, const std::vector<std::string>& classes,
                              const std::string& title) {
  const int n = static_cast<int>(matrix.size());
  const int cell = 90, left = 130, top = 80, bottom = 80, right = 30;
  cv::Mat image(top + n * cell + bottom, left + n * cell + right, CV_8UC3, cv::Scalar(255, 255, 255));
  text(image, title, {image.cols / 2, 15}, 0.7, kBlack, 2, 0.5, 1.0);
  for (int r = 0; r < n; ++r) {
    int64_t row_total = 0;
    for (int64_t v : matrix[r]) row_total += v;
    for (int c = 0; c < n; ++c) {
      // Shaded by the share of the true class, so a rare class's mistakes stay visible.
      double share = row_total ? static_cast<double>(matrix[r][c]) / row_total : 0.0;
      cv::Scalar color(255 - share * (255 - 140), 255 - share * (255 - 60), 255 - share * (255 - 10));
      cv::Rect box(left + c * cell, top + r * cell, cell, cell);
      cv::rectangle(image, box, color, cv::FILLED);
      cv::rectangle(image, box, cv::Scalar(180, 180, 180), 1);
      text(image, std::to_string(matrix[r][c]), {box.x + cell / 2, box.y + cell / 2}, 0.8,
           share > 0.5 ? cv::Scalar(255, 255, 255) : kBlack, 2, 0.5, 0.5);
    }
    const std::string name = r < static_cast<int>(classes.size()) ? classes[r] : std::to_string(r);
    text(image, name, {left - 8, top + r * cell + cell / 2}, 0.5, kBlack, 1, 1.0, 0.5);
    text(image, name, {left + r * cell + cell / 2, top + n * cell + 10}, 0.5, kBlack, 1, 0.5, 1.0);
  }
  text(image, "predicted", {left + n * cell / 2, image.rows - 15}, 0.55, kBlack, 1, 0.5, 0.0);
  text(image, "true", {10, top - 12}, 0.55, kBlack, 1, 0.0, 0.0);
  return image;
}

}  // namespace bachlab::host
