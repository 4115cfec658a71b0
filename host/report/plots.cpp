#include "host/report/plots.h"

#include "host/util/ticks.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace bachlab::host {

namespace {

const cv::Scalar kBlack(0, 0, 0);
const cv::Scalar kGrid(225, 225, 225);
const cv::Scalar kGrey(110, 110, 110);
constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;

void text(cv::Mat& image, const std::string& s, cv::Point at, double scale, const cv::Scalar& color,
          int thickness = 1, double align_x = 0.0, double align_y = 0.0) {
  int baseline = 0;
  cv::Size size = cv::getTextSize(s, kFont, scale, thickness, &baseline);
  cv::Point origin(at.x - static_cast<int>(align_x * size.width), at.y + static_cast<int>(align_y * size.height));
  cv::putText(image, s, origin, kFont, scale, color, thickness, cv::LINE_AA);
}

}  // namespace

std::string tick_label(double value, double step) {
  // A tick computed as -1e-17 is zero: never "-0.0".
  if (std::abs(value) < std::abs(step) * 1e-6) value = 0.0;
  char buffer[32];
  int decimals = step >= 1 ? 0 : std::min(4, static_cast<int>(std::ceil(-std::log10(step))));
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  return buffer;
}

namespace {

// Dashed line from a to b (OpenCV has none): dashes of `dash` pixels, gaps as long.
void dashed_line(cv::Mat& image, cv::Point a, cv::Point b, const cv::Scalar& color, int thickness, int dash = 8) {
  const double length = std::hypot(b.x - a.x, b.y - a.y);
  for (double t = 0; t < length; t += 2.0 * dash) {
    const double t2 = std::min(length, t + dash);
    cv::line(image, {a.x + static_cast<int>((b.x - a.x) * t / length), a.y + static_cast<int>((b.y - a.y) * t / length)},
             {a.x + static_cast<int>((b.x - a.x) * t2 / length), a.y + static_cast<int>((b.y - a.y) * t2 / length)},
             color, thickness, cv::LINE_8);  // crisp dashes, in exactly their colour
  }
}

// One legend entry's width: swatch, gap, text, space to the next.
int legend_entry_width(const std::string& name) {
  int baseline = 0;
  return 32 + cv::getTextSize(name, kFont, 0.5, 1, &baseline).width + 24;
}

}  // namespace

std::pair<double, double> curve_axis(const std::vector<Series>& series, const CurveOptions& options) {
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& s : series)
    for (size_t i = 0; i < s.values.size(); ++i) {
      if (!std::isfinite(s.values[i])) continue;
      const double d = i < s.spread.size() && std::isfinite(s.spread[i]) ? s.spread[i] : 0.0;
      lo = std::min(lo, s.values[i] - d), hi = std::max(hi, s.values[i] + d);
    }
  if (options.chance && std::isfinite(*options.chance)) lo = std::min(lo, *options.chance), hi = std::max(hi, *options.chance);
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  if (hi - lo < 1e-9) lo -= 0.5, hi += 0.5;
  const double pad = (hi - lo) * 0.05;
  lo = std::max(lo - pad, options.floor);
  hi = std::min(hi + pad, options.ceiling);
  return {lo, hi};
}

cv::Mat draw_learning_curve(const std::string& title, const std::string& y_label, const std::vector<Series>& series,
                            const CurveOptions& options, int width, int height) {
  // The legend gets rows of its own under the x axis: as many as its entries need.
  struct Entry {
    std::string name;
    cv::Scalar color;
    bool dashed;
  };
  std::vector<Entry> entries;
  for (const auto& s : series) entries.push_back({s.spread.empty() ? s.name : s.name + " (mean, band: +-1 SD)", s.color, false});
  if (options.chance) entries.push_back({"chance", cv::Scalar(120, 120, 120), true});
  if (options.marked_epoch > 0) entries.push_back({options.marked_label, cv::Scalar(60, 60, 60), true});
  // top leaves the title a line of its own above the y axis label, however long the title.
  const int left = 80, right = 30, top = 66, axis_band = 60, row_height = 22;
  int legend_rows = 1, x = left;
  for (const auto& e : entries) {
    const int w = legend_entry_width(e.name);
    if (x + w > width - right && x > left) ++legend_rows, x = left;
    x += w;
  }
  const int bottom = axis_band + legend_rows * row_height + 8;
  const cv::Rect plot(left, top, width - left - right, height - top - bottom);
  cv::Mat image(height, width, CV_8UC3, cv::Scalar(255, 255, 255));

  size_t epochs = 0;
  for (const auto& s : series) epochs = std::max(epochs, s.values.size());
  const auto [lo, hi] = curve_axis(series, options);
  const double step = nice_step(hi - lo, 6);
  const double first_tick = std::ceil(lo / step) * step;

  auto x_of = [&](double epoch) {
    return plot.x + (epochs <= 1 ? plot.width / 2.0 : (epoch - 1) * plot.width / (epochs - 1.0));
  };
  auto y_of = [&](double v) { return plot.y + plot.height - (v - lo) / (hi - lo) * plot.height; };
  auto point = [&](double epoch, double v) {
    return cv::Point(static_cast<int>(std::lround(x_of(epoch))), static_cast<int>(std::lround(y_of(v))));
  };

  for (int i = 0;; ++i) {
    // From an integer count, so that rounding never gives "-0.0" or a skipped last tick.
    const double v = first_tick + i * step;
    if (v > hi + step * 1e-9) break;
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
  text(image, title, {width / 2, 15}, 0.7, kBlack, 2, 0.5, 1.0);
  text(image, "epoch", {plot.x + plot.width / 2, plot.y + plot.height + 46}, 0.55, kBlack, 1, 0.5, 0.0);
  text(image, y_label, {8, plot.y - 12}, 0.55, kBlack, 1, 0.0, 0.0);

  // Bands first, so every line stays on top of every band.
  for (const auto& s : series) {
    if (s.spread.empty()) continue;
    cv::Mat overlay = image.clone();
    std::vector<cv::Point> upper, lower;
    auto flush = [&] {
      if (upper.size() > 1) {
        std::vector<cv::Point> polygon(upper);
        polygon.insert(polygon.end(), lower.rbegin(), lower.rend());
        cv::fillPoly(overlay, std::vector<std::vector<cv::Point>>{polygon}, s.color, cv::LINE_AA);
      }
      upper.clear(), lower.clear();
    };
    for (size_t i = 0; i < s.values.size(); ++i) {
      const double d = i < s.spread.size() ? s.spread[i] : NAN;
      if (!std::isfinite(s.values[i]) || !std::isfinite(d)) {
        flush();
        continue;
      }
      upper.push_back(point(i + 1.0, s.values[i] + d));
      lower.push_back(point(i + 1.0, s.values[i] - d));
    }
    flush();
    cv::addWeighted(overlay, 0.2, image, 0.8, 0, image);
  }
  if (options.chance && std::isfinite(*options.chance)) {
    const int y = point(1, *options.chance).y;
    dashed_line(image, {plot.x, y}, {plot.x + plot.width, y}, cv::Scalar(120, 120, 120), 1);
  }
  if (options.marked_epoch > 0 && static_cast<size_t>(options.marked_epoch) <= epochs) {
    const int x = point(static_cast<double>(options.marked_epoch), lo).x;
    dashed_line(image, {x, plot.y}, {x, plot.y + plot.height}, cv::Scalar(60, 60, 60), 1, 5);
  }
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
      cv::Point p = point(i + 1.0, s.values[i]);
      cv::circle(image, p, 3, s.color, cv::FILLED, cv::LINE_AA);
      run.push_back(p);
    }
    flush();
  }
  cv::rectangle(image, plot, kBlack, 1);

  int lx = left, ly = plot.y + plot.height + axis_band + row_height / 2;
  for (const auto& e : entries) {
    const int w = legend_entry_width(e.name);
    if (lx + w > width - right && lx > left) lx = left, ly += row_height;
    if (e.dashed) {
      dashed_line(image, {lx, ly}, {lx + 25, ly}, e.color, 1, 5);
    } else {
      cv::line(image, {lx, ly}, {lx + 25, ly}, e.color, 2, cv::LINE_AA);
    }
    text(image, e.name, {lx + 32, ly}, 0.5, kBlack, 1, 0.0, 0.5);
    lx += w;
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
      const cv::Scalar ink = share > 0.5 ? cv::Scalar(255, 255, 255) : kBlack;
      text(image, std::to_string(matrix[r][c]), {box.x + cell / 2, box.y + cell / 2 - 10}, 0.8, ink, 2, 0.5, 0.5);
      // The row-normalised share under the count.
      if (row_total) text(image, std::to_string(std::lround(100 * share)) + "%", {box.x + cell / 2, box.y + cell / 2 + 20}, 0.5, ink, 1, 0.5, 0.5);
    }
    const std::string name = r < static_cast<int>(classes.size()) ? classes[r] : std::to_string(r);
    text(image, name, {left - 8, top + r * cell + cell / 2}, 0.5, kBlack, 1, 1.0, 0.5);
    text(image, name, {left + r * cell + cell / 2, top + n * cell + 10}, 0.5, kBlack, 1, 0.5, 1.0);
  }
  text(image, "predicted", {left + n * cell / 2, image.rows - 15}, 0.55, kBlack, 1, 0.5, 0.0);
  text(image, "true", {10, top - 12}, 0.55, kBlack, 1, 0.0, 0.0);
  text(image, "count, and % of the true class", {left + n * cell / 2, top - 12}, 0.45, kGrey, 1, 0.5, 0.0);
  return image;
}

}  // namespace bachlab::host
