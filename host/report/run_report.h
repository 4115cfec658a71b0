#pragma once
// What a finished (or re-evaluated) run leaves in its folder, runs/<experiment>/<timestamp>/:
//   config.toml          the resolved config (written by the runner)
//   split.csv            file lists of train/val/test (written by the runner)
//   history.csv          one row per epoch: lr, train/val loss, accuracy, AUROC micro/macro
//   metrics.json         the summary (run_summary.h), final metrics of every split
//   loss.png accuracy.png  learning curves, training against validation, as the study drew them
//   confusion_matrix.png the test split's confusion matrix (validation's, without a test part)
//   predictions.csv      one row per photo and split: true and predicted class, every class's
//                        probability (a cross-validation's folder: the folds' out-of-fold rows)
//   report.html          all of the above on one page, images inline
//   checkpoints/         best.pt and last.pt (written by the trainer)
// Every file is written to a temporary name and renamed.

#include "host/report/run_summary.h"

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace bachlab::host {

/// A photo of the held-out split whose predicted class is not its true class.
struct Mistake {
  std::filesystem::path file;
  int64_t truth = 0;
  int64_t predicted = 0;
  double confidence = 0;  ///< The predicted class's probability.
  std::optional<int> fold;
};

/// How many misclassified photos a report lists (and draws heatmaps of).
constexpr size_t kMistakesListed = 48;

/// The held-out split's misclassified photos, most confident first, at most `max`;
/// `photos`, if given, receives the split's photo count.
std::vector<Mistake> misclassified_photos(const RunSummary& summary, size_t max, size_t* photos = nullptr);

/// Where a misclassified photo's heatmap is kept, relative to the summary's run folder:
/// heatmaps/<its path under the data root, '/' as '-'>.heatmap.png; a cross-validation's
/// pooled mistakes point into the folder of the fold that predicted them.
std::filesystem::path mistake_heatmap(const RunSummary& summary, const Mistake& mistake);

/// Writes history.csv, metrics.json, loss.png, accuracy.png, confusion_matrix.png,
/// predictions.csv (when the summary has predictions) and report.html into `run_dir`. `config_toml` is shown in the report.
void write_run_report(const std::filesystem::path& run_dir, const RunSummary& summary,
                      const std::string& config_toml);

/// The HTML page alone (images inlined from the PNGs already in `run_dir`).
std::string format_report_html(const std::filesystem::path& run_dir, const RunSummary& summary,
                               const std::string& config_toml);

}  // namespace bachlab::host
