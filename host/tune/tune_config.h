#pragma once
// The tables of a tuning study, read once and validated once, as every config is:
//
//   [tune]          tuner ("bayesian"), objective ("val_accuracy"), direction ("max" for
//                   accuracies and AUROCs, "min" for losses), max_trials (10), epochs (10),
//                   executions_per_trial (1), seed (the experiment's), max_consecutive_failures
//                   (3), top_k (2), folder ("studies/<config stem>", relative to the config)
//   [tune.options]    the tuner plugin's own settings (e.g. acquisition = "ucb")
//   [tune.space.<table>.<key>]   one table per tuned setting of the experiment, e.g.
//                   [tune.space.model.filters] type = "int", min = 32, max = 256, step = 32
//                   type = "int" (min, max, step = 1), "float" (min, max, log = false),
//                   "choice" (values = [...], all of one type), "bool", "fixed" (value);
//                   optional when = { parent = "optimizer.plugin", values = ["sgd"] }
//
// Everything else of the file is the experiment each trial runs (see host/train/experiment.h),
// with the trial's values written over it.

#include "host/config/config.h"
#include "host/train/experiment.h"

#include <bachlab/sdk/param_table.h>
#include <bachlab/sdk/search_space.h>
#include <bachlab/sdk/tuner.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace bachlab::host {

struct TuneSettings {
  /// Tuner plugin. Default: "bayesian".
  std::string tuner = "bayesian";
  /// Metric of a trial's best epoch that the study optimises (a monitorable metric).
  /// Default: "val_accuracy".
  std::string objective = "val_accuracy";
  /// True to maximise the objective. Default: true for accuracies and AUROCs, false for losses.
  bool maximize = true;
  /// Trials the study runs (Hyperband may stop earlier). Default: 10.
  int64_t max_trials = 10;
  /// Epochs per trial (tuners that choose budgets, like Hyperband, use it as their maximum).
  /// Default: 10.
  int64_t epochs = 10;
  /// Trainings per trial with different seeds; the objective is their mean. Default: 1.
  int64_t executions_per_trial = 1;
  /// Seeds the tuner and the trials. Default: the experiment's seed.
  uint64_t seed = kDefaultSeed;
  /// The study stops with an error after this many failed trials in a row. Default: 3.
  int64_t max_consecutive_failures = 3;
  /// Best trials retrained and evaluated on the test split at the end. Default: 2.
  int64_t top_k = 2;
  /// The study folder (study.db, trials/, tables, plots). Default: studies/<config stem>,
  /// relative to the config file.
  std::filesystem::path folder;
  /// Where the trials are stored: "sqlite:///path/study.db" or
  /// "postgresql://user@host:port/db" (no password). Default: "sqlite:///" + <folder>/study.db.
  std::string storage;
  /// Seconds between a running trial's heartbeats. Default: 10.
  double heartbeat_s = 10;
  /// A running trial whose heartbeat is older than this is run again by another worker.
  /// Default: 3 x heartbeat_s.
  double grace_s = 30;
  /// Folder of the trials' run folders (<artifacts>/trials/<id>): shared by every
  /// machine, or the same path on each machine (the trial records its host). Default: <folder>.
  std::filesystem::path artifacts;
};

/// Where each dimension was written, for messages: the table's origin.
using DimensionOrigins = std::map<std::string, sdk::Origin>;

/// Reads [tune], recording problems in its Params. `config_path` gives the default folder.
TuneSettings read_tune_settings(Config& config);

/// Reads every [tune.space.*] dimension in file order. Problems (a bad range, an empty
/// choice, a parameter that names no table, a condition on an unknown or later dimension)
/// are recorded in the tables' Params with file and line; `origins` receives each
/// dimension's location.
sdk::SearchSpace read_search_space(Config& config, DimensionOrigins* origins = nullptr);

/// The tuner plugin's settings table, [tune.options].
sdk::ParamTable& tuner_params(Config& config);

/// The StudySettings a tuner plugin is given.
sdk::StudySettings study_settings(const TuneSettings& settings);

/// The objective oriented so that larger is better.
inline double oriented(const TuneSettings& settings, double objective) {
  return settings.maximize ? objective : -objective;
}

/// The name the config reference lists `table` under: every dimension table is one entry,
/// "[tune.space.<table>.<key>]", and so is every condition, "[tune.space.<table>.<key>.when]";
/// every ensemble member is "[ensemble.<name>]"; any other name comes back as it is. `table` is written as in a config: "[tune.space.model.filters]".
std::string reference_table(const std::string& table);

/// The setting a dimension addresses: "model.filters" -> {"model", "filters"}.
std::pair<std::string, std::string> split_parameter(const std::string& name);

}  // namespace bachlab::host
