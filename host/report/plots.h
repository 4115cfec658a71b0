#pragma once
// The run's figures, drawn with OpenCV so no plotting stack is needed: the study's two
// learning curves (loss and accuracy per epoch, training against validation) and a
// confusion matrix.

#include <opencv2/core.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace bachlab::host {

/// One line of a chart; NaN values leave gaps.
struct Series {
  std::string name;
  std::vector<double> values;
  cv::Scalar color;  ///< BGR
};

/// A line chart over epochs 1..n (BGR, width x height), with axes, ticks and a legend.
cv::Mat draw_learning_curve(const std::string& title, const std::string& y_label, const std::vector<Series>& series,
                            int width = 800, int height = 480);

/// The confusion matrix (rows true, columns predicted) as a grid shaded by each row's
/// share, with the count in each cell and class names on both axes.
cv::Mat draw_confusion_matrix(const std::vector<std::vector<int64_t>>& matrix,
                              const std::vector<std::string>& classes, const std::string& title);

}  // namespace bachlab::host
