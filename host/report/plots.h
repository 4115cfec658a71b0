#pragma once
// The run's figures, drawn with OpenCV so no plotting stack is needed: the study's two
// learning curves (loss and accuracy per epoch, training against validation) and a
// confusion matrix.

#include <opencv2/core.hpp>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace bachlab::host {

/// One line of a chart; NaN values leave gaps.
struct Series {
  std::string name;
  std::vector<double> values;
  cv::Scalar color;  ///< BGR
  /// A band of +- spread[i] around values[i] (e.g. the folds' SD around their mean); empty
  /// for none.
  std::vector<double> spread;
};

/// An axis label for `value` on an axis with ticks every `step`: as many decimals as the
/// step needs (at most 4), and "0", never "-0.0", for a value that is zero up to rounding.
std::string tick_label(double value, double step);

/// What a learning curve marks besides its lines.
struct CurveOptions {
  /// A dashed horizontal line at this value, labelled "chance" (1 / classes on accuracy).
  std::optional<double> chance;
  /// A dashed vertical line at this epoch (1-based), labelled `marked_label`; 0 for none.
  int64_t marked_epoch = 0;
  std::string marked_label;
  /// Values the quantity cannot pass (0 and 1 for an accuracy, 0 for a loss): the y axis
  /// stops there, however flat the curves.
  double floor = -std::numeric_limits<double>::infinity();
  double ceiling = std::numeric_limits<double>::infinity();
};

/// The y axis a learning curve draws (lowest, highest value): the curves, their bands and
/// chance with 5% room, at least 1 wide for flat curves, within [floor, ceiling].
std::pair<double, double> curve_axis(const std::vector<Series>& series, const CurveOptions& options);

/// A line chart over epochs 1..n (BGR, width x height), with axes, ticks and a legend in a
/// band below the plot, so it never covers a curve.
cv::Mat draw_learning_curve(const std::string& title, const std::string& y_label, const std::vector<Series>& series,
                            const CurveOptions& options = {}, int width = 800, int height = 480);

/// The confusion matrix (rows true, columns predicted) as a grid shaded by each row's
/// share, with the count in each cell and class names on both axes.
cv::Mat draw_confusion_matrix(const std::vector<std::vector<int64_t>>& matrix,
                              const std::vector<std::string>& classes, const std::string& title);

}  // namespace bachlab::host
