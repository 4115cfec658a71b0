#include "host/report/run_summary.h"

#include "host/util/html.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace bachlab::host {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

json number(double v) { return std::isfinite(v) ? json(v) : json(); }
double number(const json& j) { return j.is_null() ? kNaN : j.get<double>(); }

}  // namespace

std::string metric_cell(double v, const char* format) {
  return std::isfinite(v) ? fmt::format(fmt::runtime(format), v) : std::string("-");
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

std::string format_accuracy(const RunSummary& r, const std::string& name) {
  const SplitResult* s = r.split(name);
  if (!s) return std::string("-");
  if (name != "val" || r.fold_val_accuracy.empty()) return metric_cell(s->metrics.accuracy, "{:.3f}");
  // Cross-validation: the pooled out-of-fold accuracy, +- the folds' standard deviation.
  return metric_cell(s->metrics.accuracy, "{:.3f}") + "±" + metric_cell(mean_and_sd(r.fold_val_accuracy).second, "{:.3f}");
}

std::pair<double, double> mean_and_sd(const std::vector<double>& values) {
  if (values.empty()) return {kNaN, kNaN};
  double mean = 0, square = 0;
  for (double v : values) mean += v / static_cast<double>(values.size());
  for (double v : values) square += (v - mean) * (v - mean);
  // The sample standard deviation; 0 for a single value.
  return {mean, std::sqrt(square / static_cast<double>(std::max<size_t>(1, values.size() - 1)))};
}

}  // namespace bachlab::host
