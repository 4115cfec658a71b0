#include "host/report/run_report.h"

#include "host/data/image_decode.h"
#include "host/report/plots.h"
#include "host/util/time_text.h"
#include "host/util/atomic_file.h"
#include "host/util/html.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <limits>
#include <sstream>

namespace bachlab::host {

namespace fs = std::filesystem;

namespace {

std::vector<double> column(const std::vector<EpochRecord>& history, double EpochMetrics::*field, bool val) {
  std::vector<double> out;
  for (const auto& r : history) out.push_back((val ? r.val : r.train).*field);
  return out;
}

// A photo as a small inline PNG (longest side `side` pixels), or "" if it cannot be read
// any more (the report still lists it).
std::string thumbnail_png_base64(const fs::path& file, int side) {
  try {
    cv::Mat rgb = load_image_rgb(file);
    if (rgb.empty()) return "";
    const double scale = static_cast<double>(side) / std::max(rgb.cols, rgb.rows);
    cv::Mat small, bgr;
    cv::resize(rgb, small, cv::Size(), scale, scale, cv::INTER_AREA);
    cv::cvtColor(small, bgr, cv::COLOR_RGB2BGR);
    std::vector<uint8_t> png;
    cv::imencode(".png", bgr, png);
    return base64_encode(png);
  } catch (const std::exception&) {
    return "";
  }
}

// The report's list of misclassified photos of the held-out split, most confident
// mistakes first, each with a thumbnail and, where the run drew it, its heatmap.
void misclassified_section(std::ostream& h, const fs::path& run_dir, const RunSummary& s) {
  const SplitResult* shown = s.held_out();
  if (!shown) return;
  size_t photos = 0;
  const std::vector<Mistake> mistakes = misclassified_photos(s, std::numeric_limits<size_t>::max(), &photos);
  if (photos == 0) return;
  h << "<h2>Misclassified photos (" << shown->name << ")</h2>\n<p>" << mistakes.size() << " of " << photos
    << " photos misclassified";
  if (mistakes.size() > kMistakesListed) h << "; the " << kMistakesListed << " most confident mistakes are shown";
  h << ". Every photo's probabilities are in <code>predictions.csv</code>; for a patch model a heatmap shows "
       "where in the photo it found each class (a whole-photo model gives one probability per class for the whole "
       "photo, so it has no map).</p>\n";
  if (mistakes.empty()) return;
  h << "<table><tr><th>photo</th><th>file</th><th>true class</th><th>predicted</th><th>probability</th>"
    << (s.fold_val_accuracy.empty() ? "" : "<th>fold</th>") << "<th>heatmap</th></tr>\n";
  for (size_t i = 0; i < mistakes.size() && i < kMistakesListed; ++i) {
    const Mistake& m = mistakes[i];
    const std::string thumbnail = thumbnail_png_base64(m.file, 128);
    // Linked, not inlined: a heatmap is a wide figure and there may be dozens.
    const fs::path heatmap = mistake_heatmap(s, m);
    const std::string heatmap_cell =
        fs::exists(run_dir / heatmap)
            ? "<a href=\"" + html_escape(heatmap.generic_string()) + "\"><img class=\"heat\" alt=\"heatmap\" src=\"" +
                  html_escape(heatmap.generic_string()) + "\"></a>"
            : std::string("-");
    h << "<tr><td>"
      << (thumbnail.empty() ? std::string("(unreadable)")
                            : "<img class=\"thumb\" alt=\"" + html_escape(m.file.filename().string()) +
                                  "\" src=\"data:image/png;base64," + thumbnail + "\">")
      << "</td><td>" << html_escape(relative_name(m.file, s.data_root)) << "</td><td>"
      << html_escape(class_name(s.classes, m.truth)) << "</td><td>" << html_escape(class_name(s.classes, m.predicted))
      << "</td><td>" << metric_cell(m.confidence, "{:.3f}") << "</td>"
      << (s.fold_val_accuracy.empty() ? std::string() : "<td>" + (m.fold ? std::to_string(*m.fold + 1) : "-") + "</td>")
      << "<td>" << heatmap_cell << "</td></tr>\n";
  }
  h << "</table>\n";
}

const cv::Scalar kTrainColor(180, 119, 31);  // the blue and orange of matplotlib's defaults
const cv::Scalar kValColor(14, 127, 255);

}  // namespace

std::string format_report_html(const fs::path& run_dir, const RunSummary& s, const std::string& config_toml) {
  std::ostringstream h;
  auto image = [&](const char* file, const char* alt) {
    fs::path path = run_dir / file;
    if (!fs::exists(path)) return;
    h << "<img alt=\"" << alt << "\" src=\"data:image/png;base64," << base64_encode(read_file(path)) << "\">\n";
  };
  h << html_page_start(s.experiment + " - bachlab run",
                       "td:first-child,th:first-child{text-align:left}img.thumb{max-width:none}img.heat{width:480px}");
  h << "<h1>" << html_escape(s.experiment) << "</h1>\n";
  if (!s.description.empty()) h << "<p>" << html_escape(s.description) << "</p>\n";
  h << "<p>Run folder <code>" << html_escape(s.run_dir) << "</code>, started " << html_escape(s.started)
    << ", config <code>" << html_escape(s.config_file) << "</code>, seed " << s.seed << ", " << s.threads
    << (s.threads == 1 ? " thread" : " threads") << ", training time " << format_duration(s.seconds)
    << (s.fold_val_accuracy.empty() ? std::string()
        : !s.ensemble_members.empty()
            ? fmt::format(" (the sum over its {} members' folds and refits)", s.ensemble_members.size())
            : fmt::format(" (the sum over its {} folds)", s.fold_val_accuracy.size()))
    << ". " << s.history.size() << (s.history.size() == 1 ? " epoch" : " epochs")
    << (s.stopped_early ? " (stopped early)" : "") << "; final metrics use the "
    << (s.weights == "best" ? "best epoch's (" + std::to_string(s.best_epoch) + ", by " + s.monitor + ")"
                            : std::string("last epoch's"))
    << " weights.</p>\n";
  if (const std::string note = interruption_note(s); !note.empty())
    h << "<p><b>Not finished:</b> " << html_escape(note) << ".</p>\n";

  h << "<h2>Settings</h2>\n<table><tr><th>setting</th><th>value</th></tr>\n";
  for (const auto& [key, value] : s.params)
    h << "<tr><td>" << html_escape(key) << "</td><td>" << html_escape(value) << "</td></tr>\n";
  h << "</table>\n";

  h << "<h2>Final metrics</h2>\n<p>AUROC micro: one ROC curve over the one-hot matrix (Keras' AUC, the study's "
       "\"Test AUROC\"). AUROC macro: the mean of one-vs-rest AUROC over the classes present.</p>\n"
       "<table><tr><th>split</th><th>images</th><th>loss</th><th>accuracy</th><th>AUROC micro</th>"
       "<th>AUROC macro</th><th>F1 macro</th>";
  const bool patches = std::any_of(s.splits.begin(), s.splits.end(),
                                   [](const SplitResult& split) { return std::isfinite(split.patch_accuracy); });
  if (patches) h << "<th>patch-level accuracy</th>";
  h << "</tr>\n";
  for (const auto& split : s.splits) {
    h << "<tr><td>" << split.name << "</td><td>" << split.size << "</td><td>" << metric_cell(split.metrics.loss) << "</td><td>"
      << metric_cell(split.metrics.accuracy) << "</td><td>" << metric_cell(split.metrics.auroc_micro) << "</td><td>"
      << metric_cell(split.metrics.auroc_macro) << "</td><td>" << metric_cell(split.metrics.f1_macro) << "</td>";
    if (patches) h << "<td>" << metric_cell(split.patch_accuracy) << "</td>";
    h << "</tr>\n";
  }
  h << "</table>\n";
  if (patches)
    h << "<p>Every metric is per photo: each photo is covered by a grid of patches whose class probabilities are "
         "aggregated into one prediction (see the settings). Patch-level accuracy is that of the single grid "
         "patches, each judged against its photo's label. The history's training columns are running figures over "
         "the training patches; its validation columns are per photo.</p>\n";

  if (!s.fold_val_accuracy.empty()) {
    const auto [mean, sd] = mean_and_sd(s.fold_val_accuracy);
    // An ensemble's folds are its members' folds: one link per member.
    std::vector<std::string> prefixes = {""};
    if (!s.ensemble_members.empty()) {
      prefixes.clear();
      std::string names;
      for (const auto& m : s.ensemble_members) {
        prefixes.push_back("member-" + m + "/");
        names += (names.empty() ? "" : ", ") + html_escape(m);
      }
      h << "<p>An ensemble of " << s.ensemble_members.size() << " cross-validations (" << names
        << "), each in its <code>member-&lt;name&gt;</code> folder with the same " << s.fold_val_accuracy.size()
        << " folds: the val row averages each photo's out-of-fold probabilities over the members, and the curves "
           "are the members' mean with a band of &plusmn;1 standard deviation between them.</p>\n";
    } else {
      h << "<p>" << s.fold_val_accuracy.size()
        << "-fold cross-validation: each fold's model validated on the images it did not train on; the val row "
           "pools those out-of-fold predictions, and the curves are the folds' mean with a band of &plusmn;1 "
           "standard deviation.</p>\n";
    }
    h << "<table><tr><th>fold</th><th>validation accuracy</th><th>report</th></tr>\n";
    for (size_t k = 0; k < s.fold_val_accuracy.size(); ++k) {
      h << "<tr><td>" << k + 1 << "</td><td>" << metric_cell(s.fold_val_accuracy[k], "{:.3f}") << "</td><td>";
      for (size_t p = 0; p < prefixes.size(); ++p) {
        const std::string link = html_escape(prefixes[p]) + "fold-" + std::to_string(k + 1) + "/report.html";
        h << (p ? " " : "") << "<a href=\"" << link << "\">" << link << "</a>";
      }
      h << "</td></tr>\n";
    }
    h << "<tr><th>mean &plusmn; SD</th><th>" << metric_cell(mean, "{:.3f}") << " &plusmn; " << metric_cell(sd, "{:.3f}")
      << "</th><th></th></tr>\n</table>\n";
  }

  if (!s.skipped.empty()) {
    h << "<p>" << s.skipped.size() << (s.skipped.size() == 1 ? " photo was" : " photos were")
      << " left out (<code>on_bad_image = \"skip\"</code>):</p>\n<ul>\n";
    for (const auto& line : s.skipped) h << "<li>" << html_escape(line) << "</li>\n";
    h << "</ul>\n";
  }

  if (const SplitResult* test = s.held_out()) {
    h << "<h2>" << (test->name == "test" ? "Test" : "Validation (out-of-fold)") << " split per class</h2>\n<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th>"
         "<th>AUROC (one-vs-rest)</th><th>images</th></tr>\n";
    for (size_t c = 0; c < test->metrics.per_class.size(); ++c) {
      const auto& pc = test->metrics.per_class[c];
      h << "<tr><td>" << html_escape(c < s.classes.size() ? s.classes[c] : std::to_string(c)) << "</td><td>"
        << metric_cell(pc.precision) << "</td><td>" << metric_cell(pc.recall) << "</td><td>" << metric_cell(pc.f1) << "</td><td>"
        << metric_cell(test->metrics.auroc_per_class[c]) << "</td><td>" << pc.support << "</td></tr>\n";
    }
    h << "</table>\n";
  }

  h << "<h2>Learning curves</h2>\n";
  image("loss.png", "loss per epoch");
  image("accuracy.png", "accuracy per epoch");
  if (const SplitResult* shown = s.held_out()) {
    h << "<h2>Confusion matrix (" << shown->name << ")</h2>\n";
    image("confusion_matrix.png", "confusion matrix");
  }

  misclassified_section(h, run_dir, s);

  h << "<h2>History</h2>\n<table><tr><th>epoch</th><th>lr</th><th>loss</th><th>accuracy</th><th>AUROC micro</th>"
       "<th>val loss</th><th>val accuracy</th><th>val AUROC micro</th><th>seconds</th></tr>\n";
  for (const auto& r : s.history)
    h << "<tr><td>" << r.epoch << "</td><td>" << metric_cell(r.lr, "{:.3g}") << "</td><td>" << metric_cell(r.train.loss) << "</td><td>"
      << metric_cell(r.train.accuracy) << "</td><td>" << metric_cell(r.train.auroc_micro) << "</td><td>" << metric_cell(r.val.loss)
      << "</td><td>" << metric_cell(r.val.accuracy) << "</td><td>" << metric_cell(r.val.auroc_micro) << "</td><td>"
      << metric_cell(r.seconds, "{:.1f}") << "</td></tr>\n";
  h << "</table>\n";
  h << "<h2>Resolved config</h2>\n<pre>" << html_escape(config_toml) << "</pre>\n" << kHtmlPageEnd;
  return h.str();
}

std::vector<Mistake> misclassified_photos(const RunSummary& s, size_t max, size_t* photos) {
  std::vector<Mistake> mistakes;
  size_t count = 0;
  if (const SplitResult* shown = s.held_out()) {
    for (const auto& part : s.predictions) {
      if (part.split != shown->name) continue;
      for (size_t i = 0; i < part.files.size(); ++i) {
        ++count;
        const int64_t predicted = predicted_class(part.probabilities[i]);
        if (predicted != part.labels[i])
          mistakes.push_back({part.files[i], part.labels[i], predicted,
                              part.probabilities[i][static_cast<size_t>(predicted)], part.fold});
      }
    }
  }
  std::stable_sort(mistakes.begin(), mistakes.end(),
                   [](const Mistake& a, const Mistake& b) { return a.confidence > b.confidence; });
  if (mistakes.size() > max) mistakes.resize(max);
  if (photos) *photos = count;
  return mistakes;
}

fs::path mistake_heatmap(const RunSummary& s, const Mistake& m) {
  std::string name = relative_name(m.file, s.data_root);
  std::replace(name.begin(), name.end(), '/', '-');
  const fs::path file = fs::path("heatmaps") / (fs::path(name).replace_extension().string() + ".heatmap.png");
  const bool pooled = !s.fold_val_accuracy.empty();
  return pooled && m.fold ? fs::path(fmt::format("fold-{}", *m.fold + 1)) / file : file;
}

void write_run_report(const fs::path& run_dir, const RunSummary& s, const std::string& config_toml) {
  write_file_atomic(run_dir / "history.csv", format_history_csv(s.history));
  write_file_atomic(run_dir / "metrics.json", to_json(s).dump(2) + "\n");
  // The epoch whose weights give the final metrics, marked on both curves; a
  // cross-validation's folds each have their own, so none is marked there.
  CurveOptions marks;
  if (s.fold_val_accuracy.empty() && !s.history.empty()) {
    marks.marked_epoch = s.weights == "best" && s.best_epoch > 0 ? s.best_epoch : static_cast<int64_t>(s.history.size());
    marks.marked_label = fmt::format("epoch {}: its weights are used ({})", marks.marked_epoch,
                                     s.weights == "best" ? "best " + s.monitor : std::string("last"));
  }
  marks.floor = 0;
  CurveOptions accuracy_marks = marks;
  accuracy_marks.ceiling = 1;
  if (!s.classes.empty()) accuracy_marks.chance = 1.0 / static_cast<double>(s.classes.size());
  auto series = [&](const char* name, double EpochMetrics::*field, bool val, const cv::Scalar& color) {
    Series out{name, column(s.history, field, val), color, {}};
    if (!s.history_sd.empty()) out.spread = column(s.history_sd, field, val);
    return out;
  };
  // An ensemble's curves are its members' (each already a mean over its folds), and its
  // band is the members' spread, not the folds'.
  const std::string folds = s.fold_val_accuracy.empty()       ? ""
                            : !s.ensemble_members.empty() ? std::string(" (mean of its members)")
                                                          : fmt::format(" (mean of {} folds)", s.fold_val_accuracy.size());
  write_png_atomic(run_dir / "loss.png",
                   draw_learning_curve(s.experiment + ": loss" + folds, "loss",
                                       {series("training", &EpochMetrics::loss, false, kTrainColor),
                                        series("validation", &EpochMetrics::loss, true, kValColor)},
                                       marks));
  write_png_atomic(run_dir / "accuracy.png",
                   draw_learning_curve(s.experiment + ": categorical accuracy" + folds, "accuracy",
                                       {series("training", &EpochMetrics::accuracy, false, kTrainColor),
                                        series("validation", &EpochMetrics::accuracy, true, kValColor)},
                                       accuracy_marks));
  if (const SplitResult* shown = s.held_out())
    write_png_atomic(run_dir / "confusion_matrix.png",
                     draw_confusion_matrix(shown->metrics.confusion, s.classes,
                                           s.experiment + ": " + (shown->name == "test" ? "test split" : "out-of-fold")));
  if (!s.predictions.empty())
    write_file_atomic(run_dir / "predictions.csv", format_predictions_csv(s.predictions, s.classes, s.data_root));
  write_file_atomic(run_dir / "report.html", format_report_html(run_dir, s, config_toml));
}

}  // namespace bachlab::host
