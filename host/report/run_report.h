#pragma once
// What a finished (or re-evaluated) run leaves in its folder, runs/<experiment>/<timestamp>/:
//   config.toml          the resolved config (written by the runner)
//   split.csv            file lists of train/val/test (written by the runner)
//   history.csv          one row per epoch: lr, train/val loss, accuracy, AUROC micro/macro
//   metrics.json         the summary below, final metrics of every split
//   loss.png accuracy.png  learning curves, training against validation, as the study drew them
//   confusion_matrix.png the test split's confusion matrix (validation's, without a test part)
//   predictions.csv      one row per photo and split: true and predicted class, every class's
//                        probability (a cross-validation's folder: the folds' out-of-fold rows)
//   report.html          all of the above on one page, images inline
//   checkpoints/         best.pt and last.pt (written by the trainer)
// Every file is written to a temporary name and renamed.

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

/// A photo of the held-out split whose predicted class is not its true class.
struct Mistake {
  std::filesystem::path file;
  int64_t truth = 0;
  int64_t predicted = 0;
  double confidence = 0;  ///< The predicted class's probability.
  std::optional<int> fold;
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

/// The width a table printed on a terminal keeps to: wider content is wrapped or moved to a
/// table of its own.
inline constexpr size_t kTableColumns = 120;

/// The comparison table `bachlab run` ends with: experiment, key params, train/val/test
/// accuracy, test AUROC (micro and macro) and time; "markdown" or "text" layout.
std::string format_comparison_table(const std::vector<RunSummary>& runs, bool markdown = false);

}  // namespace bachlab::host
