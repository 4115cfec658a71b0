#pragma once
// The steps runner.cpp (train), cross_validation.cpp, evaluation.cpp and prediction.cpp
// share: opening a config with its plugins, loading and splitting the photos, measuring a
// split per photo, summarising a run. Internal to host/train; the public entry points are
// in runner.h.

#include "host/config/config.h"
#include "host/data/dataset.h"
#include "host/data/prepare.h"
#include "host/data/split.h"
#include "host/plugins/registry.h"
#include "host/train/batch_source.h"
#include "host/train/run_folder.h"
#include "host/train/runner.h"
#include "host/train/trainer.h"

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace bachlab::host {

/// A config with the registry its plugins came from and the plan built from both.
struct Opened {
  Config config;
  PluginRegistry registry;
  ExperimentPlan plan;
};

/// Scans the plugin folders (`extra_paths`, then the config's) and plans the experiment.
Opened open_config(Config config, const PlanOverrides& overrides, const std::vector<std::filesystem::path>& extra_paths);

/// A validation split's predictions with its labels: what a cross-validation pools.
struct ValPrediction {
  torch::Tensor probabilities;
  torch::Tensor labels;
  double loss = 0;
  int64_t patch_correct = 0;
  int64_t patch_total = 0;
  /// (N, F) each photo's features for a learned aggregator (aggregate = "learned").
  torch::Tensor features;
};

/// correct / total; NaN for no patches.
double patch_accuracy(int64_t correct, int64_t total);

/// The photos of a run, prepared, and its split.
struct SplitData {
  /// The photos found, before any was skipped while decoding: what photos.csv records.
  Dataset discovered;
  PreparedData prepared;
  Split split;
  TensorSplit train, val, test;
};

/// The rows `indices` of `data`.
TensorSplit take(const PreparedData& data, const std::vector<int64_t>& indices);

/// The images and the split of the run: train/val/test from the fractions; for a fold of a
/// cross-validation that fold as validation and the others as training (no test part); for
/// a cross-validation's refit every photo as training.
SplitData load_data(const ExperimentPlan& plan, const RunFile& run);

/// The run's summary with the final metrics of every split; `val_out`, if given, receives
/// the validation split's predictions (a cross-validation pools them over its folds).
RunSummary summarize(const ExperimentPlan& plan, const RunFile& run, const std::filesystem::path& run_dir,
                     Trainer& trainer, const SplitData& data, const std::vector<std::string>& classes,
                     ValPrediction* val_out);

/// The dataset's class names, else the config's.
std::vector<std::string> class_names(const ExperimentPlan& plan, const SplitData& data);

/// Draws the heatmap of every misclassified photo the run's report lists; never throws:
/// returns a warning line for the log when they could not be drawn, "" otherwise.
std::string write_mistake_heatmaps(const std::filesystem::path& run_dir, const RunSummary& summary,
                                   const std::vector<std::filesystem::path>& plugin_paths);

/// A resumed run folder records the epochs it now trains to (`run --resume --epochs N`) in
/// its run.json, so eval, compare and a later resume see what ran.
void record_resumed_epochs(const std::filesystem::path& run_dir, RunFile& run, const RunOptions& options);

/// One run's final model (best or last weights, as its metrics.json says) in a trainer,
/// with what predicting with it needs (predict, export).
struct LoadedModel {
  std::unique_ptr<Trainer> trainer;
  ExperimentPlan plan;
  std::vector<std::string> classes;
  /// What the run's photos were stain-normalised to; unset without stain normalisation.
  std::optional<StainTarget> stain_target;
};

/// Loads the final model of the run in `run_dir` (a single run, a fold or a refit).
LoadedModel load_final_model(const std::filesystem::path& run_dir, const RunFile& run,
                             const std::vector<std::filesystem::path>& plugin_paths);

/// One training in `run_dir`. A new run (`fresh`) gets its folder - `run_dir`, or a new
/// timestamped one if empty - with config, split and run.json before the first epoch; a
/// resumed one continues from its last checkpoint.
RunSummary train_run(Opened opened, RunFile run, std::filesystem::path run_dir, bool fresh, const RunOptions& options,
                     ValPrediction* val_out = nullptr);

/// True for the folder of a whole cross-validation (not one of its folds or its refit).
bool cross_validation_root(const ExperimentPlan& plan, const RunFile& run);

/// <run_dir>/refit: the model trained on every photo after the folds ([train] refit).
std::filesystem::path refit_folder(const std::filesystem::path& run_dir);

/// <run_dir>/fold-<fold + 1>.
std::filesystem::path fold_folder(const std::filesystem::path& run_dir, int fold);

/// With aggregate = "learned": replaces each fold's validation probabilities (in
/// `predictions` and in its summary) by those of an aggregator fitted on the other folds'
/// photos, and writes the aggregator fitted on every fold to aggregator_file(run_dir).
void apply_learned_aggregation(const std::filesystem::path& run_dir, std::vector<RunSummary>& folds,
                               std::vector<ValPrediction>& predictions);

/// <run_dir>/aggregator.json: a cross-validation's learned photo aggregator.
std::filesystem::path aggregator_file(const std::filesystem::path& run_dir);

/// The runs' mean history per epoch (as far as the shortest goes) and its spread: a
/// cross-validation's curves from its folds', an ensemble's from its members'.
void mean_history(const std::vector<RunSummary>& runs, std::vector<EpochRecord>& mean,
                  std::vector<EpochRecord>& sd);

/// The summary of a cross-validation from its folds' summaries and validation predictions,
/// written as the run folder's report (cross_validation.cpp).
RunSummary write_pooled_folds(const std::filesystem::path& run_dir, const RunFile& run,
                              const std::vector<RunSummary>& folds, const std::vector<ValPrediction>& predictions,
                              const std::string& config_toml);

/// k-fold cross-validation in `run_dir` (cross_validation.cpp); a fresh one with an empty
/// `run_dir` gets a new timestamped folder.
RunSummary cross_validate(Opened opened, RunFile run, std::filesystem::path run_dir, bool fresh,
                          const RunOptions& options);

/// True for the folder of a whole ensemble ([ensemble.<name>] tables).
bool ensemble_root(const ExperimentPlan& plan, const RunFile& run);

/// <run_dir>/member-<name>.
std::filesystem::path member_folder(const std::filesystem::path& run_dir, const std::string& name);

/// The config of one member: the ensemble's own (`config_toml`) without [ensemble], with the
/// member's overrides and the ensemble's split seed (so every member has the same folds).
Config member_config(const std::string& config_toml, const std::string& config_file, const ExperimentPlan& plan,
                     const EnsembleMember& member);

/// The ensemble's summary from its members' cross-validations: each photo's out-of-fold
/// probabilities averaged over the members, written as the run folder's report (ensemble.cpp).
RunSummary write_fused_members(const std::filesystem::path& run_dir, const RunFile& run, const ExperimentPlan& plan,
                               const std::vector<RunSummary>& members, const std::string& config_toml);

/// Each member cross-validated in its folder, then the fused summary (ensemble.cpp).
RunSummary run_ensemble(Opened opened, RunFile run, std::filesystem::path run_dir, bool fresh,
                        const RunOptions& options);

}  // namespace bachlab::host
