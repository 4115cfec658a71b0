#include "host/train/runner.h"

#include "host/data/data.h"
#include "host/data/dataset.h"
#include "host/report/heatmap.h"
#include "host/train/history_csv.h"
#include "host/train/memory_estimate.h"
#include "host/util/time_text.h"
#include "host/util/atomic_file.h"
#include "host/util/html.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <ctime>
#include <limits>
#include <map>
#include <tuple>
#include <ostream>
#include <sstream>

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
  /// The stain target the run's photos were normalised to, so predict does the same.
  std::optional<StainTarget> stain_target;
};

void write_run_file(const fs::path& run_dir, const RunFile& run) {
  nlohmann::ordered_json j;
  j["config_file"] = run.config_file;
  j["epochs_override"] = run.epochs ? nlohmann::ordered_json(*run.epochs) : nlohmann::ordered_json();
  j["seed_override"] = run.seed ? nlohmann::ordered_json(*run.seed) : nlohmann::ordered_json();
  j["normalization"] = {{"mean", run.normalization.mean}, {"std", run.normalization.std}};
  j["started"] = run.started;
  j["fold"] = run.fold ? nlohmann::ordered_json(*run.fold) : nlohmann::ordered_json();
  if (run.stain_target) j["stain_target"] = stain_target_to_json(*run.stain_target);
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
    if (j.contains("stain_target")) run.stain_target = stain_target_from_json(j.at("stain_target"));
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

// photos.csv: which photos a run was trained on, one "file,size,mtime" line each (file
// relative to the dataset root). Resume and eval compare it with the photos found now, so
// a run never continues or is measured on other data without a word. A synthetic set is
// identified by its options and its content does not change, so its mtimes are "-" (a
// regenerated copy is the same data).
const char* const kPhotosFile = "photos.csv";

std::string photos_listing(const Dataset& dataset, bool synthetic) {
  std::string out = "file,size,mtime\n";
  for (const auto& file : dataset.files) {
    std::error_code ec;
    const auto size = fs::file_size(file, ec);
    const auto mtime = fs::last_write_time(file, ec).time_since_epoch().count();
    out += fmt::format("{},{},{}\n", file.lexically_relative(dataset.root).string(), ec ? 0 : size,
                       synthetic ? std::string("-") : std::to_string(mtime));
  }
  return out;
}

std::map<std::string, std::string> photo_lines(const std::string& listing) {
  std::map<std::string, std::string> out;
  std::istringstream lines(listing);
  std::string line;
  std::getline(lines, line);  // header
  while (std::getline(lines, line)) {
    const auto comma = line.find(',');
    if (comma != std::string::npos) out[line.substr(0, comma)] = line.substr(comma + 1);
  }
  return out;
}

// Throws Error saying what changed if the photos found now are not those of photos.csv.
// Run folders written before photos.csv existed are not checked.
void check_same_photos(const fs::path& run_dir, const Dataset& dataset, bool synthetic, const std::string& doing) {
  const fs::path file = run_dir / kPhotosFile;
  if (!fs::exists(file)) return;
  const auto before = photo_lines(read_file(file));
  const auto now = photo_lines(photos_listing(dataset, synthetic));
  if (before == now) return;
  std::vector<std::string> added, removed, changed;
  for (const auto& [name, what] : now)
    if (!before.count(name)) added.push_back(name);
  for (const auto& [name, what] : before) {
    auto it = now.find(name);
    if (it == now.end()) {
      removed.push_back(name);
    } else if (it->second != what) {
      const auto comma_a = what.find(','), comma_b = it->second.find(',');
      const bool size_changed = what.substr(0, comma_a) != it->second.substr(0, comma_b);
      changed.push_back(name + (size_changed ? " (size " + what.substr(0, comma_a) + " -> " +
                                                   it->second.substr(0, comma_b) + " bytes)"
                                             : " (modified since)"));
    }
  }
  std::string what;
  for (const auto& [names, verb] : {std::pair{&added, "added"}, std::pair{&removed, "removed"},
                                    std::pair{&changed, "changed"}}) {
    if (names->empty()) continue;
    what += fmt::format("{}{} {}: {}", what.empty() ? "" : "; ", names->size(), verb, names->front());
    for (size_t i = 1; i < names->size() && i < 3; ++i) what += ", " + (*names)[i];
    if (names->size() > 3) what += ", ...";
  }
  throw Error(file.string() + ": the photos under " + dataset.root.string() + " are not those this run was trained on (" +
              what + "). " + doing + " would use other data; restore the original photos, or start a new run");
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
  int64_t patch_correct = 0;
  int64_t patch_total = 0;
};

// The trainer's model as the callable photo-level prediction takes.
PatchProbabilities model_probabilities(Trainer& trainer) {
  return [&trainer](const torch::Tensor& patches) { return trainer.predict({patches, {}}).probabilities; };
}

// A split measured per photo as the plan says: a grid of patches, test-time augmentation
// and aggregation (host/eval/photo_prediction.h), or for whole photos without TTA the
// trainer's own predict() (one input per photo, with its training loss). `tta` false
// leaves TTA out: validation after every epoch and the training split, where it would
// multiply the time spent for a figure that only follows training.
ValPrediction measure(Trainer& trainer, const TensorSplit& split, const PhotoPredictionSettings& photo, bool tta) {
  if (photo.patch_size == 0 && (photo.tta == "none" || !tta)) {
    Prediction p = trainer.predict(split);
    return {p.probabilities, split.labels, p.loss};
  }
  PhotoPredictionSettings settings = photo;
  if (!tta) settings.tta = "none";
  PhotoPredictions p = predict_photos(split.images, split.labels, model_probabilities(trainer), settings);
  ValPrediction out{p.probabilities, split.labels, p.loss};
  if (photo.patch_size > 0) {
    out.patch_correct = p.patch_correct;
    out.patch_total = p.patch_total;
  }
  return out;
}

double patch_accuracy(int64_t correct, int64_t total) {
  return total > 0 ? static_cast<double>(correct) / static_cast<double>(total) : std::numeric_limits<double>::quiet_NaN();
}

struct SplitData {
  /// The photos found, before any was skipped while decoding: what photos.csv records.
  Dataset discovered;
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
  d.discovered = discover_dataset(plan.data);
  const Dataset& dataset = d.discovered;
  // A stain target from the training photos needs the split first: prepare unnormalised,
  // split, fit on this split's (or fold's) training rows only, then prepare normalised.
  DataConfig unnormalised = plan.data;
  if (stain_target_from_training(plan.data)) unnormalised.stain_normalize = "none";
  d.prepared = prepare_dataset(dataset, unnormalised);
  const torch::Tensor labels = d.prepared.labels.contiguous();
  std::vector<int64_t> list(labels.data_ptr<int64_t>(), labels.data_ptr<int64_t>() + labels.numel());
  const auto& s = plan.data.split;
  if (fold) {
    d.split = stratified_kfold(list, s.folds, s.seed).at(static_cast<size_t>(*fold));
  } else {
    d.split = stratified_split(list, s.train, s.val, s.test, s.seed);
  }
  if (stain_target_from_training(plan.data))
    d.prepared = prepare_dataset(dataset, plan.data,
                                 fit_stain_target(plan.data.stain_normalize, d.prepared.images, d.split.train));
  d.train = take(d.prepared, d.split.train);
  d.val = take(d.prepared, d.split.val);
  d.test = take(d.prepared, d.split.test);
  return d;
}

// One split's rows of predictions.csv: the photos at `indices` of `dataset` with one row of
// `probabilities` each.
SplitPredictions split_predictions(const std::string& split, const std::optional<int>& fold, const Dataset& dataset,
                                   const std::vector<int64_t>& indices, const torch::Tensor& probabilities) {
  const torch::Tensor rows = probabilities.to(torch::kFloat64).contiguous();
  if (rows.dim() != 2 || rows.size(0) != static_cast<int64_t>(indices.size()))
    throw Error(fmt::format("the {} split has {} photos but {} rows of predictions", split, indices.size(),
                            rows.dim() > 0 ? rows.size(0) : 0));
  SplitPredictions out{split, fold, {}, {}, {}};
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
  s.skipped = data.prepared.dataset.skipped;
  for (const auto& r : s.history) s.seconds += r.seconds;
  s.data_root = data.prepared.dataset.root;
  for (const auto& [name, split, indices] :
       {std::tuple<const char*, const TensorSplit*, const std::vector<int64_t>*>{"train", &data.train, &data.split.train},
        {"val", &data.val, &data.split.val},
        {"test", &data.test, &data.split.test}}) {
    if (split->size() == 0) continue;
    // A grid over every training photo costs as much as several epochs of training and
    // measures only fit; with patches the history's running figures show that instead.
    if (split == &data.train && plan.patches.enabled()) continue;
    ValPrediction p = measure(trainer, *split, plan.photo, split != &data.train);
    if (val_out && split == &data.val) *val_out = p;
    s.splits.push_back({name, split->size(), compute_metrics(p.probabilities, split->labels, p.loss),
                        patch_accuracy(p.patch_correct, p.patch_total)});
    s.predictions.push_back(split_predictions(name, run.fold, data.prepared.dataset, *indices, p.probabilities));
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

// The heatmap of every misclassified photo the run's report lists, drawn from the run's
// final model as `predict --heatmap` draws it: where in the photo the model found each
// class. Written before the report, which links the ones that exist.
// The run's plugin folders are passed on: its model may come from one only they hold.
// Never fatal: a heatmap that cannot be drawn must not cost the run its report, so a failure
// is returned as a note for the log.
std::string write_mistake_heatmaps(const fs::path& run_dir, const RunSummary& summary,
                                   const std::vector<fs::path>& plugin_paths) try {
  const std::vector<Mistake> mistakes = misclassified_photos(summary, kMistakesListed);
  if (mistakes.empty()) return "";
  std::vector<fs::path> files;
  for (const auto& m : mistakes) files.push_back(m.file);
  std::vector<std::string> classes;
  const std::vector<ImagePrediction> predictions = predict_images(run_dir, files, &classes, plugin_paths);
  for (size_t i = 0; i < mistakes.size(); ++i) {
    const ImagePrediction& p = predictions[i];
    const std::string truth = mistakes[i].truth < static_cast<int64_t>(classes.size())
                                  ? classes[static_cast<size_t>(mistakes[i].truth)]
                                  : std::to_string(mistakes[i].truth);
    const fs::path file = run_dir / mistake_heatmap(summary, mistakes[i]);
    fs::create_directories(file.parent_path());
    write_png_atomic(file, draw_heatmap(heatmap_input(p.photo, p.patches, p.patch_size, classes,
                                                      torch::tensor(p.probabilities), files[i].filename().string(),
                                                      truth)));
  }
  return "";
} catch (const std::exception& e) {
  return std::string("warning: the misclassified photos' heatmaps were not drawn: ") + e.what();
}

// One training in `run_dir`. A new run (`fresh`) gets its folder - `run_dir`, or a new
// timestamped one if empty - with config, split and run.json before the first epoch; a
// resumed one continues from its last checkpoint.
RunSummary train_run(Opened opened, RunFile run, fs::path run_dir, bool fresh, const RunOptions& options,
                     ValPrediction* val_out = nullptr) {
  ExperimentPlan& plan = opened.plan;
  // In a data-parallel run every rank trains; rank 0 alone writes and reports.
  const bool writes = !options.parallel || options.parallel->leader();
  std::ostream* progress = writes ? options.progress : nullptr;
  auto log = [&](const std::string& line) {
    if (progress) *progress << line << "\n" << std::flush;
  };

  SplitData data = load_data(plan, run.fold);
  if (fresh) {
    if (run_dir.empty() && writes) run_dir = create_run_folder(plan.experiment.output, plan.experiment.name);
    if (options.parallel) run_dir = options.parallel->share("run folder", run_dir.string());
    if (writes) {
      fs::create_directories(run_dir);
      write_file_atomic(run_dir / "config.toml", opened.config.resolved_toml(Config::Paths::absolute));
      write_split(run_dir / "split.csv", data.prepared.dataset, data.split);
      write_file_atomic(run_dir / kPhotosFile, photos_listing(data.discovered, plan.data.source == "synthetic"));
    }
    run.normalization = fit_normalization(data.train.images, plan.data);
    run.stain_target = data.prepared.stain_target;
    if (writes) write_run_file(run_dir, run);
  }
  if (!data.prepared.dataset.skipped.empty()) {
    std::string lines;
    for (const auto& line : data.prepared.dataset.skipped) lines += "\n  " + line;
    log(fmt::format("left out {} photos (on_bad_image = \"skip\"; also listed in metrics.json and report.html):{}",
                    data.prepared.dataset.skipped.size(), lines));
  }
  log(fmt::format("{}{}: {} ({} trainable parameters), {} train / {} val / {} test images of {}x{}, run folder {}",
                  plan.experiment.name,
                  run.fold ? fmt::format(" fold {} of {}", *run.fold + 1, plan.data.split.folds) : std::string(),
                  plan.model_plugin, plan.trainable_parameters, data.train.size(), data.val.size(), data.test.size(),
                  data.prepared.images.size(3), data.prepared.images.size(2), run_dir.string()));
  if (data.prepared.stain_target)
    log(fmt::format("stain normalisation: {}, target fitted on {}", data.prepared.stain_target->method,
                    data.prepared.stain_target->fitted_on));

  if (!fresh) check_same_photos(run_dir, data.discovered, plan.data.source == "synthetic", "Resuming");
  Trainer trainer(plan.trainer_parts(), plan.train, plan.experiment.seed, normalization_transform(run.normalization));
  if (options.parallel) trainer.set_data_parallel(options.parallel);
  trainer.set_checkpoint_dir(run_dir / "checkpoints");
  if (writes) trainer.add_callback(std::make_shared<HistoryCsv>(run_dir / "history.csv"));
  trainer.set_progress(progress, options.interactive);
  if (!fresh) {
    if (trainer.resume()) {
      log(fmt::format("resuming after epoch {} of {}", trainer.epochs_done(), plan.train.epochs));
    } else {
      log("no checkpoint yet: starting at epoch 1");
    }
  }
  if (plan.patches.enabled()) {
    // Patches train; whole photos are validated, each by its grid of patches.
    PatchSampler patches(data.train, plan.patches);
    trainer.set_validation([&](const TensorSplit& val) {
      ValPrediction p = measure(trainer, val, plan.photo, false);
      return Prediction{p.probabilities, p.loss};
    });
    trainer.fit(patches, data.val);
  } else {
    trainer.fit(data.train, data.val);
  }
  if (options.parallel && writes)
    log(fmt::format("data-parallel over {} ranks: {} collectives, {:.2f} ms each on average, {:.1f} s in all",
                    options.parallel->world(), options.parallel->collectives(),
                    1000.0 * options.parallel->collective_seconds() /
                        static_cast<double>(std::max<int64_t>(1, options.parallel->collectives())),
                    options.parallel->collective_seconds()));
  if (!writes) {
    RunSummary mine;
    mine.run_dir = run_dir.string();
    return mine;
  }

  RunSummary summary = summarize(plan, run, run_dir, trainer, data, class_names(plan, data), val_out);
  if (const std::string note = write_mistake_heatmaps(run_dir, summary, options.plugin_paths); !note.empty()) log(note);
  write_run_report(run_dir, summary, opened.config.resolved_toml(Config::Paths::absolute));
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
  int64_t images = 0, patch_correct = 0, patch_total = 0;
  for (const auto& p : predictions) {
    probabilities.push_back(p.probabilities);
    labels.push_back(p.labels);
    loss += p.loss * static_cast<double>(p.labels.size(0));
    images += p.labels.size(0);
    patch_correct += p.patch_correct;
    patch_total += p.patch_total;
  }
  base.splits.push_back({"val", images,
                         compute_metrics(torch::cat(probabilities), torch::cat(labels), loss / static_cast<double>(images)),
                         patch_accuracy(patch_correct, patch_total)});
  write_run_report(run_dir, base, config_toml);
  return base;
}

// k-fold cross-validation: fold k trains in <run>/fold-<k> (a complete run folder each, so
// `bachlab eval` and `predict` take it), then the run folder itself gets the pooled
// summary. A killed cross-validation resumes each fold where it stopped; finished folds
// are only predicted again, not retrained.
RunSummary cross_validate(Opened opened, RunFile run, fs::path run_dir, bool fresh, const RunOptions& options) {
  const ExperimentPlan& plan = opened.plan;
  const std::string config_toml = opened.config.resolved_toml(Config::Paths::absolute);
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
  if (options.parallel && opened.plan.data.split.folds > 0)
    throw Error(run.config_file + ": [data.split] folds = " + std::to_string(opened.plan.data.split.folds) +
                ": a cross-validation does not train data-parallel yet; run it without --nproc, or train one "
                "split (folds = 0) with --nproc");
  if (opened.plan.data.split.folds > 0 && !run.fold)
    return cross_validate(std::move(opened), run, run_dir, !resuming, options);
  return train_run(std::move(opened), run, run_dir, !resuming, options);
}

void check_experiment(const fs::path& config_file, const RunOptions& options) {
  if (options.resume || options.resume_latest) return;
  Opened opened = open_config(Config::load(config_file, options.config_overrides),
                              PlanOverrides{options.overrides.epochs, options.overrides.seed}, options.plugin_paths);
  check_dataset(opened.plan.data);
  check_memory(estimate_memory(opened.plan), config_file.string());
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
    return write_pooled_folds(run_dir, run, folds, predictions, opened.config.resolved_toml(Config::Paths::absolute));
  }
  SplitData data = load_data(plan, run.fold);
  check_same_photos(run_dir, data.discovered, plan.data.source == "synthetic", "Evaluating");

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
  if (const std::string note = write_mistake_heatmaps(run_dir, summary, {}); !note.empty() && progress)
    *progress << note << "\n";
  write_run_report(run_dir, summary, opened.config.resolved_toml(Config::Paths::absolute));
  return summary;
}

}  // namespace

void check_run_photos(const fs::path& run_dir) {
  RunFile run = read_run_file(run_dir);
  Config config = load_run_config(run_dir, run);
  const DataConfig data = read_data_config(config);
  check_same_photos(run_dir, discover_dataset(data), data.source == "synthetic", "Reusing its results");
}

RunSummary evaluate_run(const fs::path& run_dir, std::ostream* progress, const std::vector<std::string>& overrides) {
  return evaluate_one(run_dir, progress, nullptr, overrides);
}

namespace {

// One run's final model (best or last weights, as its metrics.json says) in a trainer.
struct LoadedModel {
  std::unique_ptr<Trainer> trainer;
  ExperimentPlan plan;
  std::vector<std::string> classes;
  /// What the run's photos were stain-normalised to; unset without stain normalisation.
  std::optional<StainTarget> stain_target;
};

LoadedModel load_final_model(const fs::path& run_dir, const RunFile& run, const std::vector<fs::path>& plugin_paths) {
  Opened opened = open_config(load_run_config(run_dir, run), PlanOverrides{run.epochs, run.seed}, plugin_paths);
  LoadedModel out;
  out.plan = opened.plan;
  out.classes = out.plan.data.classes;
  out.stain_target = run.stain_target;
  const fs::path metrics = run_dir / "metrics.json";
  bool best = out.plan.train.restore_best;
  if (fs::exists(metrics)) {
    RunSummary summary = run_summary_from_json(nlohmann::json::parse(read_file(metrics)), metrics);
    out.classes = summary.classes;
    best = summary.weights == "best";
  }
  // Photos predicted one at a time (predict, a report's heatmaps): writing each one's
  // backbone features to the run's feature cache would only fill it.
  out.plan.train.feature_cache.disk = false;
  out.trainer = std::make_unique<Trainer>(out.plan.trainer_parts(), out.plan.train, out.plan.experiment.seed,
                                          normalization_transform(run.normalization));
  const fs::path checkpoints = run_dir / "checkpoints";
  out.trainer->load_weights(best && fs::exists(checkpoints / "best.pt") ? checkpoints / "best.pt"
                                                                          : checkpoints / "last.pt");
  return out;
}

}  // namespace

std::vector<ImagePrediction> predict_images(const fs::path& run_dir, const std::vector<fs::path>& images,
                                            std::vector<std::string>* classes_out,
                                            const std::vector<fs::path>& plugin_paths) {
  RunFile run = read_run_file(run_dir);
  // A cross-validation's folder predicts with the ensemble of its fold models: each fold's
  // probabilities per patch (after TTA), averaged, then aggregated per photo.
  std::vector<LoadedModel> models;
  {
    Opened opened = open_config(load_run_config(run_dir, run), PlanOverrides{run.epochs, run.seed}, plugin_paths);
    const int folds = opened.plan.data.split.folds;
    if (folds > 0 && !run.fold) {
      for (int k = 0; k < folds; ++k) {
        const fs::path folder = fold_folder(run_dir, k);
        if (!fs::exists(folder / "checkpoints" / "last.pt"))
          throw Error(folder.string() + ": fold " + std::to_string(k + 1) + " of " + std::to_string(folds) +
                      " has no checkpoint, so the fold ensemble is incomplete; finish the cross-validation with "
                      "`bachlab run --resume " + run_dir.string() + "`");
        models.push_back(load_final_model(folder, read_run_file(folder), plugin_paths));
      }
    } else {
      models.push_back(load_final_model(run_dir, run, plugin_paths));
    }
  }
  const ExperimentPlan& plan = models.front().plan;
  const std::vector<std::string>& classes = models.front().classes;
  torch::set_num_threads(static_cast<int>(effective_threads(plan.train.threads)));
  std::vector<ImagePrediction> out;
  for (const auto& image : images) {
    // One photo at a time: photos of other sizes give prepared images of other sizes. Each
    // fold model sees the photo as its own training photos were prepared (a stain target
    // fitted on its fold's training part), predicts every grid patch (after TTA), and the
    // folds' patch probabilities are averaged before the photo's aggregate.
    torch::Tensor first_photo, patch_sum;
    PhotoPatches patches;
    for (auto& m : models) {
      torch::Tensor photo = preprocess_photo(image, plan.data, m.stain_target).unsqueeze(0);
      Trainer& trainer = *m.trainer;
      PatchProbabilities model = [&trainer](const torch::Tensor& batch) { return trainer.predict({batch, {}}).probabilities; };
      PhotoPredictions prediction = predict_photos(photo, {}, model, plan.photo, true);
      const torch::Tensor p = prediction.patches.front().probabilities;
      patch_sum = patch_sum.defined() ? patch_sum + p : p;
      if (!first_photo.defined()) {
        first_photo = photo;
        patches = prediction.patches.front();
      }
    }
    patches.probabilities = patch_sum / static_cast<double>(models.size());
    // As predict_photos(): the patches with enough tissue vote, all of them if none has.
    const torch::Tensor voters = patches.counted.any().item<bool>() ? patches.probabilities.index({patches.counted})
                                                                    : patches.probabilities;
    torch::Tensor probabilities = aggregate_patches(voters, plan.photo.aggregate).to(torch::kFloat64).contiguous();
    ImagePrediction p;
    p.image = image.string();
    const double* row = probabilities.data_ptr<double>();
    p.probabilities.assign(row, row + probabilities.numel());
    const size_t best_class = std::max_element(p.probabilities.begin(), p.probabilities.end()) - p.probabilities.begin();
    p.predicted = best_class < classes.size() ? classes[best_class] : std::to_string(best_class);
    p.patches = std::move(patches);
    p.patch_size = plan.photo.patch_size;
    p.photo = first_photo[0];
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
