#include "host/train/runner.h"

#include "host/data/data.h"
#include "host/data/dataset.h"
#include "host/util/time_text.h"
#include "host/util/atomic_file.h"
#include "host/util/html.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <ctime>
#include <tuple>
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
  /// Set in the folder of one fold of a cross-validation (0-based); unset otherwise.
  std::optional<int> fold;
};

void write_run_file(const fs::path& run_dir, const RunFile& run) {
  nlohmann::ordered_json j;
  j["config_file"] = run.config_file;
  j["epochs_override"] = run.epochs ? nlohmann::ordered_json(*run.epochs) : nlohmann::ordered_json();
  j["seed_override"] = run.seed ? nlohmann::ordered_json(*run.seed) : nlohmann::ordered_json();
  j["normalization"] = {{"mean", run.normalization.mean}, {"std", run.normalization.std}};
  j["started"] = run.started;
  j["fold"] = run.fold ? nlohmann::ordered_json(*run.fold) : nlohmann::ordered_json();
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
    if (j.contains("fold") && !j.at("fold").is_null()) run.fold = j.at("fold").get<int>();
    return run;
  } catch (const nlohmann::json::exception& e) {
    throw Error(file.string() + ": unreadable (" + std::string(e.what()) +
                "); it was not written by this version of bachlab run");
  }
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

// A validation split's predictions with its labels: what a cross-validation pools.
struct ValPrediction {
  torch::Tensor probabilities;
  torch::Tensor labels;
  double loss = 0;
};

struct SplitData {
  PreparedData prepared;
  Split split;
  TensorSplit train, val, test;
};

TensorSplit take(const PreparedData& data, const std::vector<int64_t>& indices) {
  torch::Tensor index = torch::tensor(indices, torch::kLong);
  return {data.images.index_select(0, index), data.labels.index_select(0, index)};
}

// The images and the split of the run: train/val/test from the fractions, or for a fold of
// a cross-validation that fold as validation and the others as training (no test part).
SplitData load_data(const ExperimentPlan& plan, const std::optional<int>& fold) {
  SplitData d;
  d.prepared = prepare_dataset(discover_dataset(plan.data), plan.data);
  const torch::Tensor labels = d.prepared.labels.contiguous();
  std::vector<int64_t> list(labels.data_ptr<int64_t>(), labels.data_ptr<int64_t>() + labels.numel());
  const auto& s = plan.data.split;
  if (fold) {
    d.split = stratified_kfold(list, s.folds, s.seed).at(static_cast<size_t>(*fold));
  } else {
    d.split = stratified_split(list, s.train, s.val, s.test, s.seed);
  }
  d.train = take(d.prepared, d.split.train);
  d.val = take(d.prepared, d.split.val);
  d.test = take(d.prepared, d.split.test);
  return d;
}

// One split's rows of predictions.csv: the photos at `indices` of `dataset` with one row of
// `probabilities` each.
PhotoPredictions photo_predictions(const std::string& split, const std::optional<int>& fold, const Dataset& dataset,
                                   const std::vector<int64_t>& indices, const torch::Tensor& probabilities) {
  const torch::Tensor rows = probabilities.to(torch::kFloat64).contiguous();
  if (rows.dim() != 2 || rows.size(0) != static_cast<int64_t>(indices.size()))
    throw Error(fmt::format("the {} split has {} photos but {} rows of predictions", split, indices.size(),
                            rows.dim() > 0 ? rows.size(0) : 0));
  PhotoPredictions out{split, fold, {}, {}, {}};
  for (size_t i = 0; i < indices.size(); ++i) {
    const auto index = static_cast<size_t>(indices[i]);
    out.files.push_back(dataset.files.at(index));
    out.labels.push_back(dataset.labels.at(index));
    const double* row = rows[static_cast<int64_t>(i)].data_ptr<double>();
    out.probabilities.emplace_back(row, row + rows.size(1));
  }
  return out;
}

// The run's summary with the final metrics of every split; `val_out`, if given, receives the
// validation split's predictions (a cross-validation pools them over its folds).
RunSummary summarize(const ExperimentPlan& plan, const RunFile& run, const fs::path& run_dir, Trainer& trainer,
                     const SplitData& data, const std::vector<std::string>& classes, ValPrediction* val_out) {
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
  s.data_root = data.prepared.dataset.root;
  for (const auto& [name, split, indices] :
       {std::tuple<const char*, const TensorSplit*, const std::vector<int64_t>*>{"train", &data.train, &data.split.train},
        {"val", &data.val, &data.split.val},
        {"test", &data.test, &data.split.test}}) {
    if (split->size() == 0) continue;
    Prediction p = trainer.predict(*split);
    if (val_out && split == &data.val) *val_out = {p.probabilities, split->labels, p.loss};
    s.splits.push_back({name, split->size(), compute_metrics(p.probabilities, split->labels, p.loss)});
    s.predictions.push_back(photo_predictions(name, run.fold, data.prepared.dataset, *indices, p.probabilities));
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

namespace {

// One training in `run_dir`. A new run (`fresh`) gets its folder - `run_dir`, or a new
// timestamped one if empty - with config, split and run.json before the first epoch; a
// resumed one continues from its last checkpoint.
RunSummary train_run(Opened opened, RunFile run, fs::path run_dir, bool fresh, const RunOptions& options,
                     ValPrediction* val_out = nullptr) {
  ExperimentPlan& plan = opened.plan;
  auto log = [&](const std::string& line) {
    if (options.progress) *options.progress << line << "\n" << std::flush;
  };

  SplitData data = load_data(plan, run.fold);
  if (fresh) {
    if (run_dir.empty()) {
      run_dir = create_run_folder(plan.experiment.output, plan.experiment.name);
    } else {
      fs::create_directories(run_dir);
    }
    write_file_atomic(run_dir / "config.toml", opened.config.resolved_toml());
    write_split(run_dir / "split.csv", data.prepared.dataset, data.split);
    run.normalization = fit_normalization(data.train.images, plan.data);
    write_run_file(run_dir, run);
  }
  log(fmt::format("{}{}: {} ({} trainable parameters), {} train / {} val / {} test images of {}x{}, run folder {}",
                  plan.experiment.name,
                  run.fold ? fmt::format(" fold {} of {}", *run.fold + 1, plan.data.split.folds) : std::string(),
                  plan.model_plugin, plan.trainable_parameters, data.train.size(), data.val.size(), data.test.size(),
                  plan.data.image_size, plan.data.image_size, run_dir.string()));

  Trainer trainer(plan.trainer_parts(), plan.train, plan.experiment.seed, normalization_transform(run.normalization));
  trainer.set_checkpoint_dir(run_dir / "checkpoints");
  trainer.set_progress(options.progress, options.interactive);
  if (!fresh) {
    if (trainer.resume()) {
      log(fmt::format("resuming after epoch {} of {}", trainer.epochs_done(), plan.train.epochs));
    } else {
      log("no checkpoint yet: starting at epoch 1");
    }
  }
  trainer.fit(data.train, data.val);

  RunSummary summary = summarize(plan, run, run_dir, trainer, data, class_names(plan, data), val_out);
  write_run_report(run_dir, summary, opened.config.resolved_toml());
  log("wrote " + (run_dir / "report.html").string());
  return summary;
}

fs::path fold_folder(const fs::path& run_dir, int fold) { return run_dir / fmt::format("fold-{}", fold + 1); }

// The summary of a cross-validation from its folds' summaries and validation predictions,
// written as the run folder's report: the folds' out-of-fold predictions pooled (every image
// predicted once, by the model that did not train on it) give the "val" metrics; the
// history is the folds' mean per epoch.
RunSummary write_pooled_folds(const fs::path& run_dir, const RunFile& run, const std::vector<RunSummary>& folds,
                              const std::vector<ValPrediction>& predictions, const std::string& config_toml) {
  RunSummary base = folds.front();
  base.run_dir = run_dir.string();
  base.started = run.started;
  base.history.clear();
  base.history_sd.clear();
  base.splits.clear();
  base.seconds = 0;
  base.best_epoch = 0;
  base.stopped_early = false;
  size_t epochs = folds.front().history.size();
  for (const auto& f : folds) {
    epochs = std::min(epochs, f.history.size());
    base.seconds += f.seconds;
    base.stopped_early = base.stopped_early || f.stopped_early;
    base.weights = f.weights;
    base.fold_val_accuracy.push_back(f.split("val")->metrics.accuracy);
  }
  // The out-of-fold rows only: each photo once, predicted by the fold that did not train on it.
  base.predictions.clear();
  for (const auto& f : folds)
    for (const auto& part : f.predictions)
      if (part.split == "val") base.predictions.push_back(part);
  const auto n = static_cast<double>(folds.size());
  for (size_t e = 0; e < epochs; ++e) {
    EpochRecord mean;
    mean.epoch = folds.front().history[e].epoch;
    mean.lr = folds.front().history[e].lr;
    for (const auto& f : folds) {
      const EpochRecord& r = f.history[e];
      for (auto [to, from] : {std::pair{&mean.train, &r.train}, std::pair{&mean.val, &r.val}}) {
        to->loss += from->loss / n;
        to->accuracy += from->accuracy / n;
        to->auroc_micro += from->auroc_micro / n;
        to->auroc_macro += from->auroc_macro / n;
      }
      mean.seconds += r.seconds;
    }
    base.history.push_back(mean);
    // The folds' spread around that mean, for the band around the curves.
    EpochRecord sd = mean;
    for (EpochMetrics EpochRecord::*to : {&EpochRecord::train, &EpochRecord::val}) {
      for (double EpochMetrics::*metric : {&EpochMetrics::loss, &EpochMetrics::accuracy, &EpochMetrics::auroc_micro,
                                           &EpochMetrics::auroc_macro}) {
        std::vector<double> values;
        for (const auto& f : folds) values.push_back((f.history[e].*to).*metric);
        (sd.*to).*metric = mean_and_sd(values).second;
      }
    }
    base.history_sd.push_back(sd);
  }
  std::vector<torch::Tensor> probabilities, labels;
  double loss = 0;
  int64_t images = 0;
  for (const auto& p : predictions) {
    probabilities.push_back(p.probabilities);
    labels.push_back(p.labels);
    loss += p.loss * static_cast<double>(p.labels.size(0));
    images += p.labels.size(0);
  }
  base.splits.push_back({"val", images,
                         compute_metrics(torch::cat(probabilities), torch::cat(labels), loss / static_cast<double>(images))});
  write_run_report(run_dir, base, config_toml);
  return base;
}

// k-fold cross-validation: fold k trains in <run>/fold-<k> (a complete run folder each, so
// `bachlab eval` and `predict` take it), then the run folder itself gets the pooled
// summary. A killed cross-validation resumes each fold where it stopped; finished folds
// are only predicted again, not retrained.
RunSummary cross_validate(Opened opened, RunFile run, fs::path run_dir, bool fresh, const RunOptions& options) {
  const ExperimentPlan& plan = opened.plan;
  const std::string config_toml = opened.config.resolved_toml();
  if (fresh) {
    run_dir = create_run_folder(plan.experiment.output, plan.experiment.name);
    write_file_atomic(run_dir / "config.toml", config_toml);
    write_run_file(run_dir, run);
  }
  std::vector<RunSummary> folds;
  std::vector<ValPrediction> predictions;
  for (int k = 0; k < plan.data.split.folds; ++k) {
    const fs::path folder = fold_folder(run_dir, k);
    const bool fold_fresh = !fs::exists(folder / "run.json");
    RunFile fold_run = run;
    fold_run.fold = k;
    if (!fold_fresh) fold_run = read_run_file(folder);
    // Each fold plans the experiment again: a model of its own, initialised from the seed.
    Opened fold = open_config(Config::parse(config_toml, run.config_file), PlanOverrides{run.epochs, run.seed},
                              options.plugin_paths);
    predictions.emplace_back();
    folds.push_back(train_run(std::move(fold), fold_run, folder, fold_fresh, options, &predictions.back()));
  }
  RunSummary summary = write_pooled_folds(run_dir, run, folds, predictions, config_toml);
  if (options.progress)
    *options.progress << fmt::format("{}: {}-fold cross-validation, out-of-fold accuracy {:.4f}; wrote {}\n",
                                     plan.experiment.name, plan.data.split.folds, summary.split("val")->metrics.accuracy,
                                     (run_dir / "report.html").string());
  return summary;
}

}  // namespace

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
    if (!options.config_overrides.empty())
      throw Error(run_dir.string() + ": a resumed run keeps its saved config, so " + options.config_overrides.front() +
                  " cannot apply; drop the KEY=VALUE overrides (--epochs N extends a run), or start a new run");
    if (options.overrides.epochs) run.epochs = options.overrides.epochs;
    config = load_run_config(run_dir, run);
  } else {
    config = Config::load(config_file, options.config_overrides);
    run.config_file = fs::absolute(config_file).lexically_normal().string();
    run.epochs = options.overrides.epochs;
    run.seed = options.overrides.seed;
    run.started = now_text("%Y-%m-%d %H:%M:%S");
  }
  Opened opened = open_config(std::move(config), PlanOverrides{run.epochs, run.seed}, options.plugin_paths);
  if (opened.plan.data.split.folds > 0 && !run.fold)
    return cross_validate(std::move(opened), run, run_dir, !resuming, options);
  return train_run(std::move(opened), run, run_dir, !resuming, options);
}

void check_experiment(const fs::path& config_file, const RunOptions& options) {
  if (options.resume || options.resume_latest) return;
  Opened opened = open_config(Config::load(config_file, options.config_overrides),
                              PlanOverrides{options.overrides.epochs, options.overrides.seed}, options.plugin_paths);
  check_dataset(opened.plan.data);
}

namespace {

RunSummary evaluate_one(const fs::path& run_dir, std::ostream* progress, ValPrediction* val_out,
                        const std::vector<std::string>& overrides) {
  RunFile run = read_run_file(run_dir);
  Config saved = load_run_config(run_dir, run);
  saved.apply_overrides(overrides);
  Opened opened = open_config(std::move(saved), PlanOverrides{run.epochs, run.seed}, {});
  ExperimentPlan& plan = opened.plan;
  if (plan.data.split.folds > 0 && !run.fold) {
    // A cross-validation: each fold again, then the pooled summary.
    std::vector<RunSummary> folds;
    std::vector<ValPrediction> predictions;
    for (int k = 0; k < plan.data.split.folds; ++k) {
      predictions.emplace_back();
      folds.push_back(evaluate_one(fold_folder(run_dir, k), progress, &predictions.back(), overrides));
    }
    return write_pooled_folds(run_dir, run, folds, predictions, opened.config.resolved_toml());
  }
  SplitData data = load_data(plan, run.fold);

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
  RunSummary summary = summarize(plan, run, run_dir, trainer, data, class_names(plan, data), val_out);
  write_run_report(run_dir, summary, opened.config.resolved_toml());
  return summary;
}

}  // namespace

RunSummary evaluate_run(const fs::path& run_dir, std::ostream* progress, const std::vector<std::string>& overrides) {
  return evaluate_one(run_dir, progress, nullptr, overrides);
}

std::vector<ImagePrediction> predict_images(const fs::path& run_dir, const std::vector<fs::path>& images,
                                            std::vector<std::string>* classes_out) {
  RunFile run = read_run_file(run_dir);
  Opened opened = open_config(load_run_config(run_dir, run), PlanOverrides{run.epochs, run.seed}, {});
  ExperimentPlan& plan = opened.plan;
  if (plan.data.split.folds > 0 && !run.fold)
    throw Error(run_dir.string() + ": a " + std::to_string(plan.data.split.folds) +
                "-fold cross-validation has one model per fold; predict with one of them, e.g. `bachlab predict " +
                fold_folder(run_dir, 0).string() + " IMAGE...`");
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
    out = "image,predicted";
    for (const auto& c : classes) out += "," + csv_field(c);
    out += "\n";
    for (const auto& p : predictions) {
      out += csv_field(p.image) + "," + csv_field(p.predicted);
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
