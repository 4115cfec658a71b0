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
using nlohmann::json;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

json number(double v) { return std::isfinite(v) ? json(v) : json(); }
double number(const json& j) { return j.is_null() ? kNaN : j.get<double>(); }

std::string cell(double v, const char* format = "{:.4f}") {
  return std::isfinite(v) ? fmt::format(fmt::runtime(format), v) : std::string("-");
}

std::vector<double> column(const std::vector<EpochRecord>& history, double EpochMetrics::*field, bool val) {
  std::vector<double> out;
  for (const auto& r : history) out.push_back((val ? r.val : r.train).*field);
  return out;
}

std::string class_name(const std::vector<std::string>& classes, int64_t c) {
  return c >= 0 && static_cast<size_t>(c) < classes.size() ? classes[static_cast<size_t>(c)] : std::to_string(c);
}

// The class with the highest probability (the first of equals; NaN never wins).
int64_t predicted_class(const std::vector<double>& probabilities) {
  int64_t best = 0;
  for (size_t c = 1; c < probabilities.size(); ++c) {
    const double p = probabilities[c], top = probabilities[static_cast<size_t>(best)];
    if (!std::isnan(p) && (std::isnan(top) || p > top)) best = static_cast<int64_t>(c);
  }
  return best;
}

std::string relative_name(const fs::path& file, const fs::path& root) {
  const fs::path relative = root.empty() ? fs::path() : file.lexically_relative(root);
  return (relative.empty() || *relative.begin() == "..") ? file.string() : relative.generic_string();
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
      << "</td><td>" << cell(m.confidence, "{:.3f}") << "</td>"
      << (s.fold_val_accuracy.empty() ? std::string() : "<td>" + (m.fold ? std::to_string(*m.fold + 1) : "-") + "</td>")
      << "<td>" << heatmap_cell << "</td></tr>\n";
  }
  h << "</table>\n";
}

const cv::Scalar kTrainColor(180, 119, 31);  // the blue and orange of matplotlib's defaults
const cv::Scalar kValColor(14, 127, 255);

}  // namespace

std::string format_predictions_csv(const std::vector<SplitPredictions>& predictions,
                                   const std::vector<std::string>& classes, const fs::path& data_root) {
  size_t columns = classes.size();
  for (const auto& part : predictions)
    for (const auto& row : part.probabilities) columns = std::max(columns, row.size());
  std::string out = "file,true_class,predicted_class";
  for (size_t c = 0; c < columns; ++c) out += "," + csv_field(class_name(classes, static_cast<int64_t>(c)));
  out += ",split,fold\n";
  for (const auto& part : predictions) {
    if (part.files.size() != part.labels.size() || part.files.size() != part.probabilities.size())
      throw Error(fmt::format("predictions of the {} split: {} files, {} labels and {} rows of probabilities; they "
                              "must be one per photo",
                              part.split, part.files.size(), part.labels.size(), part.probabilities.size()));
    const std::string fold = part.fold ? std::to_string(*part.fold + 1) : "";
    for (size_t i = 0; i < part.files.size(); ++i) {
      const auto& row = part.probabilities[i];
      out += csv_field(relative_name(part.files[i], data_root)) + "," + csv_field(class_name(classes, part.labels[i])) +
             "," + csv_field(class_name(classes, predicted_class(row)));
      for (size_t c = 0; c < columns; ++c) out += c < row.size() ? fmt::format(",{:.6f}", row[c]) : std::string(",");
      out += "," + part.split + "," + fold + "\n";
    }
  }
  return out;
}

std::string interruption_note(const RunSummary& run) {
  const auto done = static_cast<int64_t>(run.history.size());
  if (run.stopped_early || run.epochs_planned <= 0 || done >= run.epochs_planned) return "";
  return fmt::format("it stopped after epoch {} of {} (interrupted); `bachlab run --resume {}` continues it", done,
                     run.epochs_planned, run.run_dir);
}

const SplitResult* RunSummary::split(const std::string& name) const {
  for (const auto& s : splits)
    if (s.name == name) return &s;
  return nullptr;
}

const SplitResult* RunSummary::held_out() const {
  if (const SplitResult* test = split("test")) return test;
  return split("val") ? split("val") : split("external");
}

json to_json(const SplitMetrics& m, const std::vector<std::string>& classes) {
  json per_class = json::object();
  json auroc = json::object();
  for (size_t c = 0; c < m.per_class.size(); ++c) {
    const std::string name = c < classes.size() ? classes[c] : std::to_string(c);
    per_class[name] = {{"precision", m.per_class[c].precision},
                       {"recall", m.per_class[c].recall},
                       {"f1", m.per_class[c].f1},
                       {"support", m.per_class[c].support}};
    auroc[name] = number(c < m.auroc_per_class.size() ? m.auroc_per_class[c] : kNaN);
  }
  return {{"loss", number(m.loss)},
          {"accuracy", number(m.accuracy)},
          {"auroc_micro", number(m.auroc_micro)},
          {"auroc_macro", number(m.auroc_macro)},
          {"auroc_per_class", auroc},
          {"f1_macro", number(m.f1_macro)},
          {"per_class", per_class},
          {"confusion", m.confusion}};
}

SplitMetrics split_metrics_from_json(const json& j, const std::vector<std::string>& classes) {
  SplitMetrics m;
  m.loss = number(j.at("loss"));
  m.accuracy = number(j.at("accuracy"));
  m.auroc_micro = number(j.at("auroc_micro"));
  m.auroc_macro = number(j.at("auroc_macro"));
  m.f1_macro = number(j.at("f1_macro"));
  m.confusion = j.at("confusion").get<std::vector<std::vector<int64_t>>>();
  for (const auto& name : classes) {
    m.auroc_per_class.push_back(number(j.at("auroc_per_class").at(name)));
    const json& s = j.at("per_class").at(name);
    m.per_class.push_back({s.at("precision").get<double>(), s.at("recall").get<double>(), s.at("f1").get<double>(),
                           s.at("support").get<int64_t>()});
  }
  return m;
}

json to_json(const RunSummary& s) {
  json params = json::array();
  for (const auto& [key, value] : s.params) params.push_back({key, value});
  json history = json::array();
  for (const auto& r : s.history)
    history.push_back({{"epoch", r.epoch},
                       {"lr", r.lr},
                       {"train_loss", number(r.train.loss)},
                       {"train_accuracy", number(r.train.accuracy)},
                       {"train_auroc_micro", number(r.train.auroc_micro)},
                       {"train_auroc_macro", number(r.train.auroc_macro)},
                       {"val_loss", number(r.val.loss)},
                       {"val_accuracy", number(r.val.accuracy)},
                       {"val_auroc_micro", number(r.val.auroc_micro)},
                       {"val_auroc_macro", number(r.val.auroc_macro)},
                       {"seconds", r.seconds}});
  json splits = json::object();
  for (const auto& split : s.splits) {
    splits[split.name] = to_json(split.metrics, s.classes);
    splits[split.name]["size"] = split.size;
    if (std::isfinite(split.patch_accuracy)) splits[split.name]["patch_accuracy"] = split.patch_accuracy;
  }
  return {{"experiment", s.experiment},
          {"description", s.description},
          {"config_file", s.config_file},
          {"run_dir", s.run_dir},
          {"started", s.started},
          {"seed", s.seed},
          {"threads", s.threads},
          {"classes", s.classes},
          {"params", params},
          {"monitor", s.monitor},
          {"best_epoch", s.best_epoch},
          {"stopped_early", s.stopped_early},
          {"stop_reason", s.stop_reason},
          {"epochs_planned", s.epochs_planned},
          {"weights", s.weights},
          {"seconds", s.seconds},
          {"auroc_note",
           "auroc_micro: one ROC over the one-hot matrix (Keras' AUC, the study's \"Test AUROC\"); "
           "auroc_macro: mean of one-vs-rest AUROC over the classes present"},
          {"fold_val_accuracy", s.fold_val_accuracy},
          {"ensemble_members", s.ensemble_members},
          {"skipped", s.skipped},
          {"splits", splits},
          {"history", history}};
}

RunSummary run_summary_from_json(const json& j, const fs::path& file) {
  try {
    RunSummary s;
    s.experiment = j.at("experiment").get<std::string>();
    s.description = j.at("description").get<std::string>();
    s.config_file = j.at("config_file").get<std::string>();
    s.run_dir = j.at("run_dir").get<std::string>();
    s.started = j.at("started").get<std::string>();
    s.seed = j.at("seed").get<uint64_t>();
    s.threads = j.at("threads").get<int64_t>();
    s.classes = j.at("classes").get<std::vector<std::string>>();
    for (const auto& p : j.at("params")) s.params.emplace_back(p.at(0).get<std::string>(), p.at(1).get<std::string>());
    s.monitor = j.at("monitor").get<std::string>();
    s.best_epoch = j.at("best_epoch").get<int64_t>();
    s.stopped_early = j.at("stopped_early").get<bool>();
    s.stop_reason = j.value("stop_reason", std::string());
    if (j.contains("epochs_planned")) s.epochs_planned = j.at("epochs_planned").get<int64_t>();
    s.weights = j.at("weights").get<std::string>();
    s.seconds = j.at("seconds").get<double>();
    if (j.contains("fold_val_accuracy")) s.fold_val_accuracy = j.at("fold_val_accuracy").get<std::vector<double>>();
    if (j.contains("ensemble_members")) s.ensemble_members = j.at("ensemble_members").get<std::vector<std::string>>();
    if (j.contains("skipped")) s.skipped = j.at("skipped").get<std::vector<std::string>>();
    for (const char* name : {"train", "val", "test"}) {
      if (!j.at("splits").contains(name)) continue;
      const json& split = j.at("splits").at(name);
      s.splits.push_back({name, split.at("size").get<int64_t>(), split_metrics_from_json(split, s.classes)});
      if (split.contains("patch_accuracy")) s.splits.back().patch_accuracy = number(split.at("patch_accuracy"));
    }
    for (const auto& r : j.at("history")) {
      EpochRecord e;
      e.epoch = r.at("epoch").get<int64_t>();
      e.lr = r.at("lr").get<double>();
      e.train = {number(r.at("train_loss")), number(r.at("train_accuracy")), number(r.at("train_auroc_micro")),
                 number(r.at("train_auroc_macro"))};
      e.val = {number(r.at("val_loss")), number(r.at("val_accuracy")), number(r.at("val_auroc_micro")),
               number(r.at("val_auroc_macro"))};
      e.seconds = r.at("seconds").get<double>();
      s.history.push_back(e);
    }
    return s;
  } catch (const json::exception& e) {
    throw Error(file.string() + ": not a metrics.json written by bachlab run (" + std::string(e.what()) +
                "); re-create it with `bachlab eval RUN_DIR`");
  }
}

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
    h << "<tr><td>" << split.name << "</td><td>" << split.size << "</td><td>" << cell(split.metrics.loss) << "</td><td>"
      << cell(split.metrics.accuracy) << "</td><td>" << cell(split.metrics.auroc_micro) << "</td><td>"
      << cell(split.metrics.auroc_macro) << "</td><td>" << cell(split.metrics.f1_macro) << "</td>";
    if (patches) h << "<td>" << cell(split.patch_accuracy) << "</td>";
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
      h << "<tr><td>" << k + 1 << "</td><td>" << cell(s.fold_val_accuracy[k], "{:.3f}") << "</td><td>";
      for (size_t p = 0; p < prefixes.size(); ++p) {
        const std::string link = html_escape(prefixes[p]) + "fold-" + std::to_string(k + 1) + "/report.html";
        h << (p ? " " : "") << "<a href=\"" << link << "\">" << link << "</a>";
      }
      h << "</td></tr>\n";
    }
    h << "<tr><th>mean &plusmn; SD</th><th>" << cell(mean, "{:.3f}") << " &plusmn; " << cell(sd, "{:.3f}")
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
        << cell(pc.precision) << "</td><td>" << cell(pc.recall) << "</td><td>" << cell(pc.f1) << "</td><td>"
        << cell(test->metrics.auroc_per_class[c]) << "</td><td>" << pc.support << "</td></tr>\n";
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
    h << "<tr><td>" << r.epoch << "</td><td>" << cell(r.lr, "{:.3g}") << "</td><td>" << cell(r.train.loss) << "</td><td>"
      << cell(r.train.accuracy) << "</td><td>" << cell(r.train.auroc_micro) << "</td><td>" << cell(r.val.loss)
      << "</td><td>" << cell(r.val.accuracy) << "</td><td>" << cell(r.val.auroc_micro) << "</td><td>"
      << cell(r.seconds, "{:.1f}") << "</td></tr>\n";
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

std::string format_accuracy(const RunSummary& r, const std::string& name) {
  const SplitResult* s = r.split(name);
  if (!s) return std::string("-");
  if (name != "val" || r.fold_val_accuracy.empty()) return cell(s->metrics.accuracy, "{:.3f}");
  // Cross-validation: the pooled out-of-fold accuracy, +- the folds' standard deviation.
  return cell(s->metrics.accuracy, "{:.3f}") + "±" + cell(mean_and_sd(r.fold_val_accuracy).second, "{:.3f}");
}

std::pair<double, double> mean_and_sd(const std::vector<double>& values) {
  if (values.empty()) return {kNaN, kNaN};
  double mean = 0, square = 0;
  for (double v : values) mean += v / static_cast<double>(values.size());
  for (double v : values) square += (v - mean) * (v - mean);
  // The sample standard deviation; 0 for a single value.
  return {mean, std::sqrt(square / static_cast<double>(std::max<size_t>(1, values.size() - 1)))};
}

namespace {

// `first`, then `items` separated by ", ", wrapped before `width` columns; each further line
// starts with `indent`.
std::string wrapped_list(std::string line, const std::vector<std::string>& items, size_t width,
                         const std::string& indent) {
  std::string out;
  bool line_has_item = false;
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string piece = items[i] + (i + 1 < items.size() ? "," : "");
    if (line_has_item && line.size() + 1 + piece.size() > width) out += line + "\n", line = indent, line_has_item = false;
    line += (line_has_item ? " " : "") + piece;
    line_has_item = true;
  }
  return out + line;
}

}  // namespace

std::string format_comparison_table(const std::vector<RunSummary>& runs, bool markdown) {
  // The params every run has alike are said once, above the table and wrapped; the params
  // column keeps those that differ, so that a row stays as short as the runs allow.
  std::vector<std::string> shared;
  auto alike = [&](const std::pair<std::string, std::string>& param) {
    return std::all_of(runs.begin(), runs.end(), [&](const RunSummary& r) {
      return std::find(r.params.begin(), r.params.end(), param) != r.params.end();
    });
  };
  if (!runs.empty())
    for (const auto& param : runs.front().params)
      if (alike(param)) shared.push_back(param.first + "=" + param.second);
  std::vector<std::string> differing(runs.size());
  for (size_t i = 0; i < runs.size(); ++i)
    for (const auto& param : runs[i].params)
      if (!alike(param)) differing[i] += (differing[i].empty() ? "" : ", ") + param.first + "=" + param.second;
  const bool params_column = std::any_of(differing.begin(), differing.end(), [](const auto& d) { return !d.empty(); });

  std::vector<std::vector<std::string>> rows;
  rows.push_back({"experiment"});
  if (params_column) rows.back().push_back("params");
  for (const char* column :
       {"train acc", "val acc", "test acc", "test AUROC micro", "test AUROC macro", "epochs", "time"})
    rows.back().push_back(column);
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunSummary& r = runs[i];
    auto acc = [&](const std::string& name) { return format_accuracy(r, name); };
    const SplitResult* test = r.split("test");
    rows.push_back({r.experiment});
    if (params_column) rows.back().push_back(differing[i].empty() ? "-" : differing[i]);
    for (const std::string& value :
         {acc("train"), acc("val"), acc("test"), test ? cell(test->metrics.auroc_micro, "{:.3f}") : "-",
          test ? cell(test->metrics.auroc_macro, "{:.3f}") : "-", std::to_string(r.history.size()),
          format_duration(r.seconds)})
      rows.back().push_back(value);
  }
  const size_t left_columns = params_column ? 2 : 1;
  std::vector<size_t> width(rows.front().size(), 0);
  for (const auto& row : rows)
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  std::string out;
  if (!shared.empty())
    out += wrapped_list(runs.size() == 1 ? "params: " : "params of every run: ", shared, kTableColumns, "  ") + "\n" +
           (markdown ? "\n" : "");
  for (size_t i = 0; i < rows.size(); ++i) {
    std::string line = markdown ? "|" : "";
    for (size_t c = 0; c < rows[i].size(); ++c) {
      const bool left = c < left_columns;
      std::string padded = left ? fmt::format("{:<{}}", rows[i][c], width[c]) : fmt::format("{:>{}}", rows[i][c], width[c]);
      line += markdown ? " " + padded + " |" : (c ? "  " : "") + padded;
    }
    out += line + "\n";
    if (i == 0 && markdown) {
      std::string rule = "|";
      for (size_t c = 0; c < width.size(); ++c)
        rule += (c < left_columns ? ":" + std::string(width[c] + 1, '-') : std::string(width[c] + 1, '-') + ":") + "|";
      out += rule + "\n";
    }
  }
  return out;
}

}  // namespace bachlab::host
