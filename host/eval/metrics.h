#pragma once
// Classification metrics computed from class probabilities, the way scikit-learn defines
// them (tests/eval/fixtures holds scikit-learn's values for the same inputs). AUROC comes
// in two flavours and every name says which:
//  - micro: one ROC curve over the flattened one-hot matrix (every image x class cell is a
//    binary decision). This is what Keras' AUC metric reports on a one-hot target, so it is
//    what the study called "Test AUROC". Keras interpolates over 200 thresholds; this is the
//    exact area, which Keras approaches as thresholds grow.
//  - macro: one-vs-rest AUROC per class, averaged with equal weight.

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace bachlab::host {

/// Area under the ROC curve of binary `scores` against `positives` (true = positive),
/// ties handled as scikit-learn's roc_auc_score does (a tied group is one ROC step).
/// NaN when `positives` has only one class or any score is NaN: the curve is then undefined.
double binary_auroc(const std::vector<double>& scores, const std::vector<bool>& positives);

/// Share of rows whose highest probability is at the true label (ties: the lowest class
/// index wins, as argmax does). `probabilities` (N, C), `labels` (N) int64.
double accuracy(const torch::Tensor& probabilities, const torch::Tensor& labels);

/// Micro-averaged AUROC over the one-hot matrix: scikit-learn's
/// roc_auc_score(one_hot(labels), probabilities, average="micro").
double auroc_micro(const torch::Tensor& probabilities, const torch::Tensor& labels);

/// One-vs-rest AUROC of each class; NaN for a class absent from `labels` (no positives,
/// so no ROC curve). scikit-learn raises an error in that case instead.
std::vector<double> auroc_per_class(const torch::Tensor& probabilities, const torch::Tensor& labels);

/// Mean of auroc_per_class over the classes present in `labels` (scikit-learn's
/// average="macro" on the one-hot matrix restricted to those columns); NaN if none is.
double auroc_macro(const torch::Tensor& probabilities, const torch::Tensor& labels);

/// Rows are true classes, columns predicted classes (scikit-learn's confusion_matrix).
std::vector<std::vector<int64_t>> confusion_matrix(const torch::Tensor& probabilities, const torch::Tensor& labels);

/// Precision, recall and F1 of one class, and how many true samples it has.
struct ClassScores {
  double precision = 0;
  double recall = 0;
  double f1 = 0;
  int64_t support = 0;
};

/// Per-class scores from a confusion matrix. A zero denominator gives 0, which is what
/// scikit-learn returns (with a warning) under its default zero_division.
std::vector<ClassScores> class_scores(const std::vector<std::vector<int64_t>>& confusion);

/// Everything reported for one split.
struct SplitMetrics {
  double loss = 0;
  double accuracy = 0;
  double auroc_micro = 0;
  double auroc_macro = 0;
  std::vector<double> auroc_per_class;
  std::vector<std::vector<int64_t>> confusion;
  std::vector<ClassScores> per_class;
  double f1_macro = 0;  ///< Unweighted mean of the per-class F1.
};

/// Mean of -log p(true class) over the rows of `probabilities` (N, C), each p clamped at
/// 1e-7: the photo-level loss of aggregated probabilities.
double mean_log_loss(const torch::Tensor& probabilities, const torch::Tensor& labels);

/// All metrics of `probabilities` (N, C) against `labels` (N); `loss` is carried through.
SplitMetrics compute_metrics(const torch::Tensor& probabilities, const torch::Tensor& labels, double loss);

}  // namespace bachlab::host
