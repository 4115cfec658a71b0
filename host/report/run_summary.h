#pragma once
// A run's summary: what metrics.json holds (its schema: to_json and run_summary_from_json),
// the per-photo predictions of predictions.csv, and the small helpers every place that
// shows a run's numbers shares (report.html, compare, eval, tune). The page itself is
// host/report/run_report.h; comparisons of runs are host/report/compare.h.

#include "host/eval/history.h"
#include "host/eval/metrics.h"
#include "host/util/time_text.h"  // format_duration, which the tables use

#include <nlohmann/json.hpp>

#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace bachlab::host {

/// Final metrics of one split and how many images it had.
struct SplitResult {
  std::string name;  ///< "train", "val" or "test"; "external" for photos from elsewhere (eval --data)
  int64_t size = 0;
  /// Per photo (with patches: the grid's patches aggregated, see host/eval/photo_prediction.h).
  SplitMetrics metrics;
  /// Patch training only: the share of single grid patches whose most probable class is
  /// their photo's label, shown beside the photo-level accuracy; NaN otherwise.
  double patch_accuracy = std::numeric_limits<double>::quiet_NaN();
};

/// What the final model said of each photo of one split (or of one fold's validation part):
/// the rows of predictions.csv. Whoever computes the probabilities (one forward pass per
/// photo, or a photo's patches aggregated) hands them over here.
struct SplitPredictions {
  std::string split;  ///< "train", "val" or "test"
  /// 0-based fold of a cross-validation; unset otherwise.
  std::optional<int> fold;
  std::vector<std::filesystem::path> files;
  /// True class of each photo.
  std::vector<int64_t> labels;
  /// One row per photo, one probability per class (the run's class order).
  std::vector<std::vector<double>> probabilities;
};

/// predictions.csv: file (relative to `data_root` when inside it), true_class,
/// predicted_class, one column per class with its probability, split, fold (1-based;
/// empty outside a cross-validation). Classes beyond `classes` are named by their index.
std::string format_predictions_csv(const std::vector<SplitPredictions>& predictions,
                                   const std::vector<std::string>& classes, const std::filesystem::path& data_root);

/// Everything metrics.json and report.html say about a run.
struct RunSummary {
  std::string experiment;
  std::string description;
  std::string config_file;  ///< The config the run was started from.
  std::string run_dir;
  std::string started;      ///< Local time the run folder was made, "YYYY-mm-dd HH:MM:SS".
  uint64_t seed = 0;
  int64_t threads = 0;
  std::vector<std::string> classes;
  /// Settings worth comparing across runs, in display order (model, optimizer, lr, ...).
  std::vector<std::pair<std::string, std::string>> params;
  std::vector<EpochRecord> history;
  std::string monitor;
  int64_t best_epoch = 0;
  bool stopped_early = false;
  /// Why training stopped before epochs_planned (Trainer::stop_reason); "" if it did not.
  std::string stop_reason;
  /// The epochs the run was to train ([train] epochs, or --epochs); 0 in a metrics.json of
  /// an older version. A history shorter than this, not stopped early: interrupted.
  int64_t epochs_planned = 0;
  /// Which weights the final metrics are of: "best" or "last".
  std::string weights = "last";
  /// train, val, test in that order (a part with no images is left out).
  std::vector<SplitResult> splits;
  /// Training seconds summed over every process that worked on the run.
  double seconds = 0;
  /// A k-fold cross-validation's validation accuracy of each fold (its "val" split is then
  /// the folds' out-of-fold predictions pooled, and its history their mean); empty otherwise.
  std::vector<double> fold_val_accuracy;
  /// An ensemble's members ([ensemble.<name>]), whose cross-validations its "val" split
  /// averages (in <run_dir>/member-<name>); empty otherwise.
  std::vector<std::string> ensemble_members;
  /// Photos left out with [data] on_bad_image = "skip", as "file: reason"; empty otherwise.
  std::vector<std::string> skipped;
  /// A cross-validation's per-epoch standard deviation over its folds (history is their
  /// mean): the band around its curves. Not in metrics.json; empty otherwise.
  std::vector<EpochRecord> history_sd;
  /// Per-photo predictions (predictions.csv and the report's misclassified photos); not in
  /// metrics.json, so a summary read back from it has none.
  std::vector<SplitPredictions> predictions;
  /// The folder the photos' names in predictions.csv are relative to.
  std::filesystem::path data_root;

  /// The split called `name`, or null.
  const SplitResult* split(const std::string& name) const;
  /// The split the final per-class metrics and confusion matrix are shown for: test, or
  /// val when there is no test part (a cross-validation), or external (eval --data); null
  /// if none.
  const SplitResult* held_out() const;
};

nlohmann::json to_json(const SplitMetrics& metrics, const std::vector<std::string>& classes);
SplitMetrics split_metrics_from_json(const nlohmann::json& json, const std::vector<std::string>& classes);
nlohmann::json to_json(const RunSummary& summary);
/// Reads a metrics.json written by to_json; throws Error naming `file` if it does not fit.
RunSummary run_summary_from_json(const nlohmann::json& json, const std::filesystem::path& file);

/// "" for a run that trained all its epochs (or stopped early); for one that was
/// interrupted, "it stopped after epoch E of N (interrupted); `bachlab run --resume DIR`
/// continues it", for every place that shows its numbers.
std::string interruption_note(const RunSummary& run);

/// The accuracy of split `name` with three decimals, "-" if the run has no such split; a
/// cross-validation's "val" as "0.812±0.034" (pooled out-of-fold accuracy ± the folds' SD).
std::string format_accuracy(const RunSummary& run, const std::string& name);

/// Mean and sample standard deviation (0 for one value; NaN for none).
std::pair<double, double> mean_and_sd(const std::vector<double>& values);

/// A metric as a table shows it (`format`, e.g. "{:.4f}"); "-" if not finite.
std::string metric_cell(double value, const char* format = "{:.4f}");

/// The name of class `c`: classes[c], or the index for a class beyond the list.
std::string class_name(const std::vector<std::string>& classes, int64_t c);

/// The class with the highest probability (the first of equals; NaN never wins).
int64_t predicted_class(const std::vector<double>& probabilities);

/// `file` relative to `root` when it lies inside it (with '/'), else as it is.
std::string relative_name(const std::filesystem::path& file, const std::filesystem::path& root);

}  // namespace bachlab::host
