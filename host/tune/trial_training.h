#pragma once
// Trials that train: each trial is the study config's experiment with the trial's values
// written over it, run by the training area's run_experiment(), once per execution.
//
//   <study>/trials/<id>/execution-<e>.toml       the experiment this execution ran
//   <study>/trials/<id>/execution-<e>/<stamp>/   its run folder (history, checkpoints, report)
//
// A trial handed out again after its worker died continues its run folders from their last
// checkpoints (the trainer resumes to the very same numbers), and a Hyperband promotion
// copies its parent's run folders and trains them on to its own epochs.

#include "host/config/config.h"
#include "host/data/data_config.h"
#include "host/plugins/registry.h"
#include "host/report/run_report.h"
#include "host/tune/study.h"
#include "host/tune/tune_config.h"

#include <bachlab/sdk/param_table.h>
#include <bachlab/sdk/search_space.h>

#include <filesystem>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

namespace bachlab::host {

/// A study config, read and checked.
struct StudyConfig {
  std::filesystem::path file;
  TuneSettings settings;
  sdk::SearchSpace space;
  DimensionOrigins origins;
  /// The [tune.options] settings, for creating the tuner.
  sdk::ParamTable tuner_params;
  /// The experiment's [data] (for `bachlab check`).
  DataConfig data;
  /// Command-line KEY=VALUE overrides, applied each time the study's file is read.
  std::vector<std::string> overrides;
};

/// Reads [tune], [tune.space.*] and [tune.options] of `file`, checks that the experiment part
/// builds and that every dimension addresses a setting the experiment takes (building the
/// experiment with each extreme value of each dimension), and that the tuner accepts its
/// settings. Throws one Error listing every problem with file, line and key.
StudyConfig load_study_config(const std::filesystem::path& file, PluginRegistry& registry);
/// The same for a config already loaded; its tables keep what the readers asked of them
/// (for `bachlab config-keys`).
StudyConfig load_study_config(Config& config, PluginRegistry& registry);

/// Values written over the study config for one execution, besides the trial's own.
using Overrides = std::vector<std::pair<std::string, sdk::Scalar>>;

/// The experiment config of a trial as TOML: the study config (every `extends` merged)
/// without its [tune] tables, with `params` and `extra` written over it ("table.key" =
/// value). Relative paths are made absolute, so the file runs from any folder.
std::string experiment_toml(Config& study_config, const sdk::Assignment& params, const Overrides& extra = {});

/// The objective of a run: the best value of `settings.objective` over its epochs (the
/// largest or smallest as the direction says); NaN if no epoch has a finite value.
double run_objective(const RunSummary& run, const TuneSettings& settings);

struct TrainingTrialOptions {
  /// Intra-op threads for each training; 0 leaves [train] threads as configured.
  int64_t threads = 0;
  /// Per-epoch progress of each training; null for none.
  std::ostream* progress = nullptr;
  /// Plugin folders searched before the config's own (tests pass the build's).
  std::vector<std::filesystem::path> plugin_paths;
};

/// The trial function of `bachlab tune`: trains every execution of a trial and returns the
/// mean objective.
TrialFunction training_trial_function(const StudyConfig& study, const TrainingTrialOptions& options = {});

/// Writes `folder`/best_trial.toml: the best trial's experiment, runnable with `bachlab run`.
/// Returns false (writing nothing) if no trial completed.
bool write_best_trial_config(const StudyConfig& study, const std::vector<StoredTrial>& trials,
                             const std::filesystem::path& folder);

/// Retrains the `settings.top_k` best trials with the study's epochs and seed and evaluates
/// them on the test split, as the study did with its two best models: each gets
/// <study>/top/<rank>-trial-<id>.toml and a run folder beside it. Returns their summaries,
/// best first.
std::vector<RunSummary> retrain_top_trials(const StudyConfig& study, const std::vector<StoredTrial>& trials,
                                           const TrainingTrialOptions& options = {});

}  // namespace bachlab::host
