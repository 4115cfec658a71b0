#include "host/train/run_steps.h"

#include "host/data/data.h"
#include "host/data/dataset.h"
#include "host/data/parallel.h"
#include "host/report/heatmap.h"
#include "host/train/history_csv.h"
#include "host/train/memory_estimate.h"
#include "host/train/mlflow_log.h"
#include "host/util/time_text.h"
#include "host/util/atomic_file.h"
#include "host/util/html.h"
#include "host/util/interrupt.h"

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

Opened open_config(Config config, const PlanOverrides& overrides, const std::vector<fs::path>& extra_paths) {
  Opened o{std::move(config), PluginRegistry(), ExperimentPlan()};
  std::vector<fs::path> folders = extra_paths;
  for (auto& folder : read_plugin_paths(o.config)) folders.push_back(folder);
  o.registry.scan(plugin_search_path(folders));
  o.plan = plan_experiment(o.config, o.registry, overrides);
  // Folds that replaced an extended file's fractions: the config the run saves (and its
  // folds and refit read back) holds the folds alone, as it ran.
  if (o.plan.data.fractions_replaced) {
    std::vector<std::string> removals;
    for (const char* key : {"train", "val", "test"})
      if (o.config.table("data.split").has(key)) removals.push_back(std::string("~data.split.") + key);
    o.config.apply_overrides(removals, "[data.split] folds");
  }
  return o;
}


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
  if (photo.patch_size == 0 && (photo.tta == Tta::none || !tta)) {
    Prediction p = trainer.predict(split);
    return {p.probabilities, split.labels, p.loss};
  }
  PhotoPredictionSettings settings = photo;
  if (!tta) settings.tta = Tta::none;
  PhotoPredictions p = predict_photos(split.images, split.labels, model_probabilities(trainer), settings);
  ValPrediction out{p.probabilities, split.labels, p.loss};
  out.features = p.features;
  if (photo.patch_size > 0) {
    out.patch_correct = p.patch_correct;
    out.patch_total = p.patch_total;
  }
  return out;
}

double patch_accuracy(int64_t correct, int64_t total) {
  return total > 0 ? static_cast<double>(correct) / static_cast<double>(total) : std::numeric_limits<double>::quiet_NaN();
}


TensorSplit take(const PreparedData& data, const std::vector<int64_t>& indices) {
  torch::Tensor index = torch::tensor(indices, torch::kLong);
  return {data.images.index_select(0, index), data.labels.index_select(0, index)};
}

// The k folds [data.split] group asks for.
std::vector<Split> folds_of(const Dataset& dataset, const std::vector<int64_t>& labels, const SplitOptions& s) {
  if (s.group == FoldGrouping::block) return block_kfold(labels, s.folds);
  if (s.group != FoldGrouping::csv) return stratified_kfold(labels, s.folds, s.seed);
  const fs::path csv = dataset.root / kBachGroundTruth;
  std::vector<std::string> missing;
  for (size_t i = 0; i < dataset.files.size(); ++i)
    if (dataset.groups.empty() || dataset.groups[i].empty()) missing.push_back(dataset.files[i].filename().string());
  if (!missing.empty())
    throw Error(fmt::format("{}: [data.split] group = \"csv\" needs a group (patient or slide id) in the third column "
                            "of every row, but {} of {} photos have none (first: {}); add it as <file>,<Class>,<group> "
                            "or use group = \"block\"",
                            csv.string(), missing.size(), dataset.files.size(), missing.front()));
  return group_kfold(labels, dataset.groups, s.folds);
}

SplitData load_data(const ExperimentPlan& plan, const RunFile& run) {
  SplitData d;
  d.discovered = discover_dataset(plan.data);
  const Dataset& dataset = d.discovered;
  // A stain target from the training photos needs the split first: prepare unnormalised,
  // split, fit on this split's (or fold's) training rows only, then prepare normalised.
  DataConfig unnormalised = plan.data;
  if (stain_target_from_training(plan.data)) unnormalised.stain_normalize = StainMethod::none;
  d.prepared = prepare_dataset(dataset, unnormalised);
  const torch::Tensor labels = d.prepared.labels.contiguous();
  std::vector<int64_t> list(labels.data_ptr<int64_t>(), labels.data_ptr<int64_t>() + labels.numel());
  const auto& s = plan.data.split;
  if (run.refit) {
    for (int64_t i = 0; i < int64_t(list.size()); ++i) d.split.train.push_back(i);
  } else if (run.fold) {
    d.split = folds_of(d.prepared.dataset, list, s).at(static_cast<size_t>(*run.fold));
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
  s.stop_reason = trainer.stop_reason();
  s.epochs_planned = plan.train.epochs;
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
    // measures only fit; with patches the history's running figures show that instead. A
    // refit has no other photos, so its report measures those.
    if (split == &data.train && plan.patches.enabled() && !run.refit) continue;
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

std::string write_mistake_heatmaps(const fs::path& run_dir, const RunSummary& summary,
                                   const std::vector<fs::path>& plugin_paths) try {
  const std::vector<Mistake> mistakes = misclassified_photos(summary, kMistakesListed);
  if (mistakes.empty()) return "";
  std::vector<fs::path> files;
  for (const auto& m : mistakes) files.push_back(m.file);
  std::vector<std::string> classes;
  const std::vector<ImagePrediction> predictions = predict_images(run_dir, files, &classes, plugin_paths);
  Progress progress("drawing the misclassified photos' heatmaps", mistakes.size());
  for (size_t i = 0; i < mistakes.size(); ++i, progress.advance()) {
    const ImagePrediction& p = predictions[i];
    if (p.patch_size == 0) return "";  // a whole-photo model has no map to draw (heatmap.h)
    const std::string truth = mistakes[i].truth < static_cast<int64_t>(classes.size())
                                  ? classes[static_cast<size_t>(mistakes[i].truth)]
                                  : std::to_string(mistakes[i].truth);
    const fs::path file = run_dir / mistake_heatmap(summary, mistakes[i]);
    fs::create_directories(file.parent_path());
    write_png_atomic(file, draw_heatmap(heatmap_input(p, classes, truth)));
  }
  return "";
} catch (const std::exception& e) {
  return std::string("warning: the misclassified photos' heatmaps were not drawn: ") + e.what();
}

void record_resumed_epochs(const fs::path& run_dir, RunFile& run, const RunOptions& options) {
  if (!options.overrides.epochs || run.epochs == options.overrides.epochs) return;
  run.epochs = options.overrides.epochs;
  if (!options.parallel || options.parallel->leader()) write_run_file(run_dir, run);
}

RunSummary train_run(Opened opened, RunFile run, fs::path run_dir, bool fresh, const RunOptions& options,
                     ValPrediction* val_out) {
  ExperimentPlan& plan = opened.plan;
  // In a data-parallel run every rank trains; rank 0 alone writes and reports.
  const bool writes = !options.parallel || options.parallel->leader();
  std::ostream* progress = writes ? options.progress : nullptr;
  auto log = [&](const std::string& line) {
    if (progress) *progress << line << "\n" << std::flush;
  };

  SplitData data = load_data(plan, run);
  // Patches train; whole photos are validated, each by its grid of patches. Made before the
  // run folder, so a patch that does not fit the photos leaves no folder behind.
  std::optional<PatchSampler> patches;
  if (plan.patches.enabled()) patches.emplace(data.train, plan.patches);
  if (fresh && run_dir.empty() && writes) run_dir = create_run_folder(plan.experiment.output, plan.experiment.name);
  const auto lock = writes ? hold_run_folder(run_dir) : nullptr;
  if (fresh) {
    if (options.parallel) run_dir = options.parallel->share("run folder", run_dir.string());
    if (writes) {
      fs::create_directories(run_dir);
      write_file_atomic(run_dir / "config.toml", opened.config.resolved_toml(Config::Paths::absolute));
      write_split(run_dir / "split.csv", data.prepared.dataset, data.split);
      write_file_atomic(run_dir / kPhotosFile, photos_listing(data.discovered, plan.data.source == DataSource::synthetic));
    }
    run.normalization = fit_normalization(data.train.images, plan.data);
    run.stain_target = data.prepared.stain_target;
    run.world_size = options.parallel ? options.parallel->world() : 1;
    if (writes) write_run_file(run_dir, run);
  }
  // After run.json: the folder of a fold, refit or member is then inside a run folder, whose
  // MLflow run is its parent.
  const std::shared_ptr<MlflowLog> mlflow =
      writes ? open_mlflow_log(plan.experiment, run_dir, opened.config, progress) : nullptr;
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
    log(fmt::format("stain normalisation: {}, target fitted on {}", kStainMethods.name(data.prepared.stain_target->method),
                    data.prepared.stain_target->fitted_on));
  if (const size_t unchanged = data.prepared.stain_unchanged; unchanged > 0)
    log(fmt::format("warning: stain normalisation left {} of {} photos as they were: too little tissue to estimate "
                    "their stains (mostly glass?)",
                    unchanged, data.prepared.dataset.files.size()));
  for (const auto& warning : plan.warnings) log("warning: " + warning);

  if (!fresh) {
    check_same_photos(run_dir, data.discovered, plan.data.source == DataSource::synthetic, "Resuming");
    const int world = options.parallel ? options.parallel->world() : 1;
    if (world != run.world_size)
      throw Error(fmt::format("{}: this run trained in {} {} and would resume in {}; batch norm sees each "
                              "process's share of a batch, so the numbers would change. Resume with {}, or start a "
                              "new run",
                              (run_dir / "run.json").string(), run.world_size,
                              run.world_size == 1 ? "process" : "processes", world,
                              run.world_size == 1 ? std::string("no --nproc")
                                                  : fmt::format("--nproc {}", run.world_size)));
  }
  TrainerParts trainer_parts = plan.trainer_parts();
  if (patches)
    trainer_parts.validation = [&](Trainer& trainer, const TensorSplit& val) {
      ValPrediction p = measure(trainer, val, plan.photo, false);
      return Prediction{p.probabilities, p.loss};
    };
  Trainer trainer(std::move(trainer_parts), plan.train, plan.experiment.seed,
                  normalization_transform(run.normalization));
  if (options.parallel) trainer.set_data_parallel(options.parallel);
  trainer.set_checkpoint_dir(run_dir / "checkpoints");
  if (writes) trainer.add_callback(std::make_shared<HistoryCsv>(run_dir / "history.csv"));
  if (mlflow) trainer.add_callback(mlflow);
  trainer.set_progress(progress, options.interactive);
  if (!fresh) {
    record_resumed_epochs(run_dir, run, options);
    bool resumed = false;
    try {
      resumed = trainer.resume();
    } catch (const Error& e) {
      // Checkpoints say what is wrong with them; what to do instead depends on the command.
      throw Error(std::string(e.what()) + ". Start a new run without --resume");
    }
    if (resumed) {
      log(fmt::format("resuming after epoch {} of {}", trainer.epochs_done(), plan.train.epochs));
    } else {
      log("no checkpoint yet: starting at epoch 1");
    }
  }
  try {
    if (patches) {
      trainer.fit(*patches, data.val);
    } else {
      trainer.fit(data.train, data.val);
    }
  } catch (const Interrupted& stop) {
    const int64_t saved = trainer.epochs_done();
    Interrupted out(stop.signal(), fmt::format("{} of {} ({})", stop.where(), run_dir.string(),
                                               saved > 0 ? fmt::format("epochs 1-{} are saved", saved)
                                                         : std::string("no epoch had finished")));
    // A fold, refit or member continues with `--resume` of the run that holds it.
    out.resume_dir = outermost_run_folder(run_dir);
    throw out;
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
  if (mlflow) {
    mlflow->log_summary(summary);
    mlflow->end(MlflowLog::Status::finished);
  }
  log("wrote " + (run_dir / "report.html").string());
  return summary;
}

namespace {

void refuse_data_parallel_folds(const ExperimentPlan& plan, const std::string& config_file) {
  if (plan.data.split.folds > 0)
    throw Error(config_file + ": [data.split] folds = " + std::to_string(plan.data.split.folds) +
                ": a cross-validation does not train data-parallel yet; run it without --nproc, or train one "
                "split (folds = 0) with --nproc");
}

}  // namespace

RunSummary run_experiment(const fs::path& config_file, const RunOptions& options) {
  const bool resuming = options.resume.has_value() || options.resume_latest;
  RunFile run;
  fs::path run_dir;
  Config config;
  std::shared_ptr<FolderLock> lock;
  if (resuming) {
    run_dir = fs::absolute(options.resume ? *options.resume : latest_run(config_file)).lexically_normal();
    if (!run_dir.has_filename()) run_dir = run_dir.parent_path();  // "RUN/" as typed
    run = read_run_file(run_dir);
    if (!options.parallel || options.parallel->leader()) lock = hold_run_folder(run_dir);
    if (options.overrides.seed && (!run.seed || *run.seed != *options.overrides.seed))
      throw Error(run_dir.string() + ": --seed " + std::to_string(*options.overrides.seed) +
                  " differs from the seed the run started with; a resumed run keeps its seed. Drop --seed, or "
                  "start a new run without --resume");
    if (!options.config_overrides.empty())
      throw Error(run_dir.string() + ": a resumed run keeps its saved config, so " + options.config_overrides.front() +
                  " cannot apply; drop the KEY=VALUE overrides (--epochs N extends a run), or start a new run");
    config = load_run_config(run_dir, run);
  } else {
    config = Config::load(config_file, options.config_overrides);
    run.config_file = fs::absolute(config_file).lexically_normal().string();
    run.epochs = options.overrides.epochs;
    run.seed = options.overrides.seed;
    run.started = now_text("%Y-%m-%d %H:%M:%S");
  }
  // A resume with --epochs trains to the new count; each folder records it when it resumes.
  const std::optional<int64_t> epochs = resuming && options.overrides.epochs ? options.overrides.epochs : run.epochs;
  Opened opened = open_config(std::move(config), PlanOverrides{epochs, run.seed}, options.plugin_paths);
  // Every new run, whoever starts it (`run`, a tuning trial, a retrain), is refused with the
  // arithmetic before anything is decoded if it cannot fit, not by an allocator mid-way.
  if (!resuming) check_run_can_start(opened.plan, run.config_file);
  // Said here: the folds of a cross-validation read the saved config, which holds no
  // fractions any more, so their own logs do not repeat it.
  if (!resuming && opened.plan.data.fractions_replaced && options.progress &&
      (!options.parallel || options.parallel->leader()))
    for (const auto& note : opened.plan.data.notes) *options.progress << "warning: " << note << "\n";
  if (options.parallel) refuse_data_parallel_folds(opened.plan, run.config_file);
  if (ensemble_root(opened.plan, run)) return run_ensemble(std::move(opened), run, run_dir, !resuming, options);
  if (cross_validation_root(opened.plan, run))
    return cross_validate(std::move(opened), run, run_dir, !resuming, options);
  return train_run(std::move(opened), run, run_dir, !resuming, options);
}

namespace {

// A new run's config as run_experiment opens it.
Opened open_new_run(const fs::path& config_file, const RunOptions& options) {
  return open_config(Config::load(config_file, options.config_overrides),
                     PlanOverrides{options.overrides.epochs, options.overrides.seed}, options.plugin_paths);
}

}  // namespace

Config new_run_config(const fs::path& config_file, const RunOptions& options) {
  return std::move(open_new_run(config_file, options).config);
}

void check_experiment(const fs::path& config_file, const RunOptions& options) {
  if (options.resume || options.resume_latest) return;
  Opened opened = open_new_run(config_file, options);
  if (options.data_parallel) refuse_data_parallel_folds(opened.plan, config_file.string());
  check_dataset(opened.plan.data);
  check_run_can_start(opened.plan, config_file.string());
  check_ensemble_members(opened.config, opened.plan, options.plugin_paths, true);
}

}  // namespace bachlab::host
