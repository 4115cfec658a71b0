#include "host/train/runner.h"

#include "host/data/data.h"
#include "host/util/atomic_file.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <ctime>
#include <ostream>

namespace bachlab::host {

namespace fs = std::filesystem;

namespace {

// run.json: what reopening a run needs beyond its config.toml.
struct RunFile {
  std::string config_file;
  std::optional<int64_t> epochs;
  std::optional<uint64_t> seed;
  Normalization normalization;
  std::string started;
};

void write_run_file(const fs::path& run_dir, const RunFile& run) {
  nlohmann::ordered_json j;
  j["config_file"] = run.config_file;
  j["epochs_override"] = run.epochs ? nlohmann::ordered_json(*run.epochs) : nlohmann::ordered_json();
  j["seed_override"] = run.seed ? nlohmann::ordered_json(*run.seed) : nlohmann::ordered_json();
  j["normalization"] = {{"mean", run.normalization.mean}, {"std", run.normalization.std}};
  j["started"] = run.started;
  write_file_atomic(run_dir / "run.json", j.dump(2) + "\n");
}

RunFile read_run_file(const fs::path& run_dir) {
  const fs::path file = run_dir / "run.json";
  if (!fs::exists(file))
    throw Error(run_dir.string() + ": not a run folder (it has no run.json); pass a folder made by `bachlab run`, "
                "such as runs/<experiment>/<timestamp>");
  try {
    auto j = nlohmann::json::parse(read_file(file));
    RunFile run;
    run.config_file = j.at("config_file").get<std::string>();
    if (!j.at("epochs_override").is_null()) run.epochs = j.at("epochs_override").get<int64_t>();
    if (!j.at("seed_override").is_null()) run.seed = j.at("seed_override").get<uint64_t>();
    run.normalization.mean = j.at("normalization").at("mean").get<std::array<float, 3>>();
    run.normalization.std = j.at("normalization").at("std").get<std::array<float, 3>>();
    run.started = j.at("started").get<std::string>();
    return run;
  } catch (const nlohmann::json::exception& e) {
    throw Error(file.string() + ": unreadable (" + std::string(e.what()) +
                "); it was not written by this version of bachlab run");
  }
}

std::string now_text() {
  std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local);
  return text;
}

// The run's config exactly as saved, read as if it were the file the run started from, so
// that its relative paths (data root, output, plugin folders) mean what they meant then.
Config load_run_config(const fs::path& run_dir, const RunFile& run) {
  return Config::parse(read_file(run_dir / "config.toml"), run.config_file);
}

struct Opened {
  Config config;
  PluginRegistry registry;
  ExperimentPlan plan;
};

Opened open_config(Config config, const PlanOverrides& overrides, const std::vector<fs::path>& extra_paths) {
  Opened o{std::move(config), PluginRegistry(), ExperimentPlan()};
  std::vector<fs::path> folders = extra_paths;
  for (auto& folder : read_plugin_paths(o.config)) folders.push_back(folder);
  o.registry.scan(plugin_search_path(folders));
  o.plan = plan_experiment(o.config, o.registry, overrides);
  return o;
}

struct SplitData {
  PreparedData prepared;
  Split split;
  TensorSplit train, val, test;
};

TensorSplit take(const PreparedData& data, const std::vector<int64_t>& indices) {
  torch::Tensor index = torch::tensor(indices, torch::kLong);
  return {data.images.index_select(0, index), data.labels.index_select(0, index)};
}

SplitData load_data(const ExperimentPlan& plan, const std::string& config_file) {
  if (plan.data.split.folds > 0)
    throw Error(config_file + ": [data.split] folds = " + std::to_string(plan.data.split.folds) +
                " asks for cross-validation, which `bachlab run` does not do; remove folds to train once on a "
                "train/val/test split");
  SplitData d;
  d.prepared = prepare_dataset(discover_dataset(plan.data), plan.data);
  const torch::Tensor labels = d.prepared.labels.contiguous();
  std::vector<int64_t> list(labels.data_ptr<int64_t>(), labels.data_ptr<int64_t>() + labels.numel());
  const auto& s = plan.data.split;
  d.split = stratified_split(list, s.train, s.val, s.test, s.seed);
  d.train = take(d.prepared, d.split.train);
  d.val = take(d.prepared, d.split.val);
  d.test = take(d.prepared, d.split.test);
  return d;
}

RunSummary summarize(const ExperimentPlan& plan, const RunFile& run, const fs::path& run_dir, Trainer& trainer,
                     const SplitData& data, const std::vector<std::string>& classes) {
  RunSummary s;
  s.experiment = plan.experiment.name;
  s.description = plan.experiment.description;
  s.config_file = run.config_file;
  s.run_dir = run_dir.string();
  s.started = run.started;
  s.seed = plan.experiment.seed;
  s.threads = effective_threads(plan.train.threads);
  s.classes = classes;
  s.params = plan.key_params();
  s.history = trainer.history();
  s.monitor = plan.train.early_stopping.monitor;
  s.best_epoch = trainer.best_epoch();
  s.stopped_early = trainer.stopped_early();
  s.weights = plan.train.restore_best && s.best_epoch > 0 ? "best" : "last";
  for (const auto& r : s.history) s.seconds += r.seconds;
  for (const auto& [name, split] : {std::pair<const char*, const TensorSplit*>{"train", &data.train},
                                    {"val", &data.val},
                                    {"test", &data.test}}) {
    if (split->size() == 0) continue;
    Prediction p = trainer.predict(*split);
    s.splits.push_back({name, split->size(), compute_metrics(p.probabilities, split->labels, p.loss)});
  }
  return s;
}

std::vector<std::string> class_names(const ExperimentPlan& plan, const SplitData& data) {
  if (!data.prepared.dataset.classes.empty()) return data.prepared.dataset.classes;
  return plan.data.classes;
}

}  // namespace

BatchTransform normalization_transform(const Normalization& n) {
  if (n.mean == std::array<float, 3>{0.f, 0.f, 0.f} && n.std == std::array<float, 3>{1.f, 1.f, 1.f})
    return {{}, "unit"};
  torch::Tensor mean = torch::tensor(std::vector<float>(n.mean.begin(), n.mean.end())).view({1, 3, 1, 1});
  torch::Tensor std = torch::tensor(std::vector<float>(n.std.begin(), n.std.end())).view({1, 3, 1, 1});
  // Nine significant digits give back the very float, so equal keys mean equal statistics.
  return {[mean, std](const torch::Tensor& batch) { return (batch - mean) / std; },
          fmt::format("standardize mean {:.9g} {:.9g} {:.9g} std {:.9g} {:.9g} {:.9g}", n.mean[0], n.mean[1], n.mean[2],
                      n.std[0], n.std[1], n.std[2])};
}

fs::path latest_run(const fs::path& config_file) {
  Config config = Config::load(config_file);
  ExperimentSettings settings = read_experiment_settings(config.table("experiment"), config.path());
  const fs::path folder = settings.output / settings.name;
  std::vector<fs::path> runs;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(folder, ec))
    if (entry.is_directory() && fs::exists(entry.path() / "run.json")) runs.push_back(entry.path());
  if (runs.empty())
    throw Error(folder.string() + ": no run of experiment \"" + settings.name +
                "\" to resume (no folder with a run.json); start one with `bachlab run " + config_file.string() + "`");
  // Folder names are timestamps; a same-second suffix "-N" sorts after its plain name.
  return *std::max_element(runs.begin(), runs.end(), [](const fs::path& a, const fs::path& b) {
    return a.filename().string() < b.filename().string();
  });
}

RunSummary run_experiment(const fs::path& config_file, const RunOptions& options) {
  const bool resuming = options.resume.has_value() || options.resume_latest;
  RunFile run;
  fs::path run_dir;
  Config config;
  if (resuming) {
    run_dir = options.resume ? *options.resume : latest_run(config_file);
    run = read_run_file(run_dir);
    if (options.overrides.seed && (!run.seed || *run.seed != *options.overrides.seed))
      throw Error(run_dir.string() + ": --seed " + std::to_string(*options.overrides.seed) +
                  " differs from the seed the run started with; a resumed run keeps its seed. Drop --seed, or "
                  "start a new run without --resume");
    if (options.overrides.epochs) run.epochs = options.overrides.epochs;
    config = load_run_config(run_dir, run);
  } else {
    config = Config::load(config_file);
    run.config_file = fs::absolute(config_file).lexically_normal().string();
    run.epochs = options.overrides.epochs;
    run.seed = options.overrides.seed;
    run.started = now_text();
  }
  Opened opened = open_config(std::move(config), PlanOverrides{run.epochs, run.seed}, options.plugin_paths);
  ExperimentPlan& plan = opened.plan;
  auto log = [&](const std::string& line) {
    if (options.progress) *options.progress << line << "\n" << std::flush;
  };

  SplitData data = load_data(plan, run.config_file);
  if (!resuming) {
    run_dir = create_run_folder(plan.experiment.output, plan.experiment.name);
    write_file_atomic(run_dir / "config.toml", opened.config.resolved_toml());
    write_split(run_dir / "split.csv", data.prepared.dataset, data.split);
    run.normalization = fit_normalization(data.train.images, plan.data);
    write_run_file(run_dir, run);
  }
  log(fmt::format("{}: {} ({} trainable parameters), {} train / {} val / {} test images of {}x{}, run folder {}",
                  plan.experiment.name, plan.model_plugin, plan.trainable_parameters, data.train.size(),
                  data.val.size(), data.test.size(), plan.data.image_size, plan.data.image_size, run_dir.string()));

  Trainer trainer(plan.trainer_parts(), plan.train, plan.experiment.seed, normalization_transform(run.normalization));
  trainer.set_checkpoint_dir(run_dir / "checkpoints");
  trainer.set_progress(options.progress, options.interactive);
  if (resuming) {
    if (trainer.resume()) {
      log(fmt::format("resuming after epoch {} of {}", trainer.epochs_done(), plan.train.epochs));
    } else {
      log("no checkpoint yet: starting at epoch 1");
    }
  }
  trainer.fit(data.train, data.val);

  RunSummary summary = summarize(plan, run, run_dir, trainer, data, class_names(plan, data));
  write_run_report(run_dir, summary, opened.config.resolved_toml());
  log("wrote " + (run_dir / "report.html").string());
  return summary;
}

RunSummary evaluate_run(const fs::path& run_dir, std::ostream* progress) {
  RunFile run = read_run_file(run_dir);
  Opened opened = open_config(load_run_config(run_dir, run), PlanOverrides{run.epochs, run.seed}, {});
  ExperimentPlan& plan = opened.plan;
  SplitData data = load_data(plan, run.config_file);

  // The split is recomputed from the config; if the photos changed since the run, the
  // numbers would silently be of other images, so compare with the saved file lists.
  const fs::path check = run_dir / "split.check.csv";
  write_split(check, data.prepared.dataset, data.split);
  const bool same = read_file(check) == read_file(run_dir / "split.csv");
  fs::remove(check);
  if (!same)
    throw Error((run_dir / "split.csv").string() +
                ": the dataset no longer gives this run's split (photos were added, removed or renamed since); "
                "evaluate with the original photos, or start a new run");

  Trainer trainer(plan.trainer_parts(), plan.train, plan.experiment.seed, normalization_transform(run.normalization));
  trainer.set_checkpoint_dir(run_dir / "checkpoints");
  trainer.set_progress(progress, false);
  if (!trainer.resume())
    throw Error((run_dir / "checkpoints" / "last.pt").string() +
                ": no checkpoint; the run never finished an epoch. Resume it with `bachlab run --resume " +
                run_dir.string() + "`");
  if (plan.train.restore_best && trainer.best_epoch() > 0) trainer.load_weights(run_dir / "checkpoints" / "best.pt");
  torch::set_num_threads(static_cast<int>(effective_threads(plan.train.threads)));
  RunSummary summary = summarize(plan, run, run_dir, trainer, data, class_names(plan, data));
  write_run_report(run_dir, summary, opened.config.resolved_toml());
  return summary;
}

std::vector<ImagePrediction> predict_images(const fs::path& run_dir, const std::vector<fs::path>& images,
                                            std::vector<std::string>* classes_out) {
  RunFile run = read_run_file(run_dir);
  Opened opened = open_config(load_run_config(run_dir, run), PlanOverrides{run.epochs, run.seed}, {});
  ExperimentPlan& plan = opened.plan;
  std::vector<std::string> classes = plan.data.classes;
  const fs::path metrics = run_dir / "metrics.json";
  bool best = plan.train.restore_best;
  if (fs::exists(metrics)) {
    RunSummary summary = run_summary_from_json(nlohmann::json::parse(read_file(metrics)), metrics);
    classes = summary.classes;
    best = summary.weights == "best";
  }
  Trainer trainer(plan.trainer_parts(), plan.train, plan.experiment.seed, normalization_transform(run.normalization));
  const fs::path checkpoints = run_dir / "checkpoints";
  trainer.load_weights(best && fs::exists(checkpoints / "best.pt") ? checkpoints / "best.pt" : checkpoints / "last.pt");
  torch::set_num_threads(static_cast<int>(effective_threads(plan.train.threads)));

  std::vector<torch::Tensor> batch;
  for (const auto& image : images) batch.push_back(preprocess_image(image, plan.data.image_size));
  TensorSplit input{torch::stack(batch), {}};
  torch::Tensor probabilities = trainer.predict(input).probabilities.to(torch::kFloat64).contiguous();
  std::vector<ImagePrediction> out;
  for (size_t i = 0; i < images.size(); ++i) {
    ImagePrediction p;
    p.image = images[i].string();
    const double* row = probabilities[static_cast<int64_t>(i)].data_ptr<double>();
    p.probabilities.assign(row, row + probabilities.size(1));
    const size_t best_class = std::max_element(p.probabilities.begin(), p.probabilities.end()) - p.probabilities.begin();
    p.predicted = best_class < classes.size() ? classes[best_class] : std::to_string(best_class);
    out.push_back(std::move(p));
  }
  if (classes_out) *classes_out = classes;
  return out;
}

std::string format_predictions(const std::vector<ImagePrediction>& predictions,
                               const std::vector<std::string>& classes, const std::string& format) {
  std::string out;
  if (format == "json") {
    nlohmann::ordered_json array = nlohmann::ordered_json::array();
    for (const auto& p : predictions) {
      nlohmann::ordered_json probabilities;
      for (size_t c = 0; c < classes.size(); ++c) probabilities[classes[c]] = p.probabilities[c];
      array.push_back({{"image", p.image}, {"predicted", p.predicted}, {"probabilities", probabilities}});
    }
    return array.dump(2) + "\n";
  }
  if (format == "csv") {
    auto quote = [](const std::string& s) {
      if (s.find_first_of(",\"\n") == std::string::npos) return s;
      std::string q = "\"";
      for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
      return q + "\"";
    };
    out = "image,predicted";
    for (const auto& c : classes) out += "," + quote(c);
    out += "\n";
    for (const auto& p : predictions) {
      out += quote(p.image) + "," + quote(p.predicted);
      for (double v : p.probabilities) out += fmt::format(",{:.6f}", v);
      out += "\n";
    }
    return out;
  }
  if (format != "table")
    throw Error("--format must be one of table, csv, json (was \"" + format + "\")");
  size_t image_width = 5, predicted_width = 9;
  for (const auto& p : predictions) {
    image_width = std::max(image_width, p.image.size());
    predicted_width = std::max(predicted_width, p.predicted.size());
  }
  out = fmt::format("{:<{}}  {:<{}}", "image", image_width, "predicted", predicted_width);
  for (const auto& c : classes) out += fmt::format("  {:>{}}", c, std::max<size_t>(c.size(), 6));
  out += "\n";
  for (const auto& p : predictions) {
    out += fmt::format("{:<{}}  {:<{}}", p.image, image_width, p.predicted, predicted_width);
    for (size_t c = 0; c < classes.size(); ++c)
      out += fmt::format("  {:>{}.4f}", p.probabilities[c], std::max<size_t>(classes[c].size(), 6));
    out += "\n";
  }
  return out;
}

}  // namespace bachlab::host
