#include "host/eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace bachlab::host {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::vector<double> to_doubles(const torch::Tensor& tensor) {
  torch::Tensor flat = tensor.detach().to(torch::kCPU, torch::kFloat64).contiguous().view(-1);
  const double* data = flat.data_ptr<double>();
  return std::vector<double>(data, data + flat.numel());
}

std::vector<int64_t> to_labels(const torch::Tensor& labels) {
  torch::Tensor flat = labels.detach().to(torch::kCPU, torch::kInt64).contiguous().view(-1);
  const int64_t* data = flat.data_ptr<int64_t>();
  return std::vector<int64_t>(data, data + flat.numel());
}

void check_shapes(const torch::Tensor& probabilities, const torch::Tensor& labels) {
  TORCH_CHECK(probabilities.dim() == 2, "metrics: probabilities must be (N, C), got ", probabilities.sizes());
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == probabilities.size(0),
              "metrics: labels must be (N) matching probabilities (N, C), got ", labels.sizes(), " and ",
              probabilities.sizes());
}

std::vector<int64_t> argmax_rows(const torch::Tensor& probabilities) {
  return to_labels(probabilities.detach().argmax(1));
}

}  // namespace

double binary_auroc(const std::vector<double>& scores, const std::vector<bool>& positives) {
  const size_t n = scores.size();
  size_t total_positive = std::count(positives.begin(), positives.end(), true);
  size_t total_negative = n - total_positive;
  if (total_positive == 0 || total_negative == 0) return kNaN;
  // A NaN score has no place on the ROC curve (and would break both the sort's ordering
  // and the tie walk below, which relies on a score equalling itself): the area is undefined.
  if (std::any_of(scores.begin(), scores.end(), [](double s) { return std::isnan(s); })) return kNaN;

  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });

  // Walks thresholds from high to low; a group of tied scores moves the ROC point
  // diagonally in one step, which is the trapezoid scikit-learn integrates.
  double area = 0;
  double tp = 0, fp = 0;
  for (size_t i = 0; i < n;) {
    double group_tp = 0, group_fp = 0;
    size_t j = i;
    for (; j < n && scores[order[j]] == scores[order[i]]; ++j) (positives[order[j]] ? group_tp : group_fp) += 1;
    area += group_fp * (tp + group_tp / 2);
    tp += group_tp;
    fp += group_fp;
    i = j;
  }
  return area / (static_cast<double>(total_positive) * static_cast<double>(total_negative));
}

double accuracy(const torch::Tensor& probabilities, const torch::Tensor& labels) {
  check_shapes(probabilities, labels);
  if (labels.numel() == 0) return kNaN;
  auto predicted = argmax_rows(probabilities);
  auto truth = to_labels(labels);
  int64_t correct = 0;
  for (size_t i = 0; i < truth.size(); ++i) correct += predicted[i] == truth[i];
  return static_cast<double>(correct) / static_cast<double>(truth.size());
}

double auroc_micro(const torch::Tensor& probabilities, const torch::Tensor& labels) {
  check_shapes(probabilities, labels);
  const int64_t classes = probabilities.size(1);
  auto scores = to_doubles(probabilities);
  auto truth = to_labels(labels);
  std::vector<bool> positives(scores.size(), false);
  for (size_t i = 0; i < truth.size(); ++i) positives[i * classes + truth[i]] = true;
  return binary_auroc(scores, positives);
}

std::vector<double> auroc_per_class(const torch::Tensor& probabilities, const torch::Tensor& labels) {
  check_shapes(probabilities, labels);
  const int64_t classes = probabilities.size(1);
  auto scores = to_doubles(probabilities);
  auto truth = to_labels(labels);
  std::vector<double> out;
  for (int64_t c = 0; c < classes; ++c) {
    std::vector<double> column(truth.size());
    std::vector<bool> positives(truth.size());
    for (size_t i = 0; i < truth.size(); ++i) {
      column[i] = scores[i * classes + c];
      positives[i] = truth[i] == c;
    }
    bool present = std::find(truth.begin(), truth.end(), c) != truth.end();
    out.push_back(present ? binary_auroc(column, positives) : kNaN);
  }
  return out;
}

double auroc_macro(const torch::Tensor& probabilities, const torch::Tensor& labels) {
  double sum = 0;
  int count = 0;
  for (double value : auroc_per_class(probabilities, labels)) {
    if (std::isnan(value)) continue;
    sum += value;
    ++count;
  }
  return count ? sum / count : kNaN;
}

std::vector<std::vector<int64_t>> confusion_matrix(const torch::Tensor& probabilities, const torch::Tensor& labels) {
  check_shapes(probabilities, labels);
  const int64_t classes = probabilities.size(1);
  std::vector<std::vector<int64_t>> matrix(classes, std::vector<int64_t>(classes, 0));
  auto predicted = argmax_rows(probabilities);
  auto truth = to_labels(labels);
  for (size_t i = 0; i < truth.size(); ++i) {
    TORCH_CHECK(truth[i] >= 0 && truth[i] < classes, "metrics: label ", truth[i], " outside 0..", classes - 1);
    ++matrix[truth[i]][predicted[i]];
  }
  return matrix;
}

std::vector<ClassScores> class_scores(const std::vector<std::vector<int64_t>>& confusion) {
  const size_t classes = confusion.size();
  std::vector<ClassScores> out(classes);
  for (size_t c = 0; c < classes; ++c) {
    int64_t tp = confusion[c][c];
    int64_t actual = 0, predicted = 0;
    for (size_t k = 0; k < classes; ++k) {
      actual += confusion[c][k];
      predicted += confusion[k][c];
    }
    ClassScores& s = out[c];
    s.support = actual;
    s.precision = predicted ? static_cast<double>(tp) / predicted : 0.0;
    s.recall = actual ? static_cast<double>(tp) / actual : 0.0;
    s.f1 = s.precision + s.recall > 0 ? 2 * s.precision * s.recall / (s.precision + s.recall) : 0.0;
  }
  return out;
}

double mean_log_loss(const torch::Tensor& probabilities, const torch::Tensor& labels) {
  return -probabilities.to(torch::kFloat64)
              .gather(1, labels.to(torch::kLong).unsqueeze(1))
              .clamp_min(1e-7)
              .log()
              .mean()
              .item<double>();
}

SplitMetrics compute_metrics(const torch::Tensor& probabilities, const torch::Tensor& labels, double loss) {
  SplitMetrics m;
  m.loss = loss;
  m.accuracy = accuracy(probabilities, labels);
  m.auroc_micro = auroc_micro(probabilities, labels);
  m.auroc_per_class = auroc_per_class(probabilities, labels);
  m.auroc_macro = auroc_macro(probabilities, labels);
  m.confusion = confusion_matrix(probabilities, labels);
  m.per_class = class_scores(m.confusion);
  double f1_sum = 0;
  for (const auto& s : m.per_class) f1_sum += s.f1;
  m.f1_macro = m.per_class.empty() ? kNaN : f1_sum / m.per_class.size();
  return m;
}

}  // namespace bachlab::host
