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
#include "host/report/run_report.h"
#include "host/tune/study.h"
#include "host/tune/study_config.h"
#include "host/tune/tune_config.h"

#include <bachlab/sdk/search_space.h>

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace bachlab::host {

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

// What a trial's executions and the retrained best trials (best_trials.h) share: how a
// run folder is recognised as finished and as trained with the very settings asked for.

/// The summary of the run in `run_dir` if it trained `epochs` epochs (or stopped early);
/// nullopt for no folder or an unfinished run. `epochs` 0 accepts any finished run.
std::optional<RunSummary> finished_run(const std::filesystem::path& run_dir, int64_t epochs);

/// The split must not move between trials and executions: the override that pins it to
/// the experiment's seed, or none when the config pins it itself.
Overrides pinned_split(Config& config);

/// <folder>/trial-key.txt: what the folder's runs were trained with (the trial's experiment,
/// every study setting and the seed). A folder whose key differs belongs to another trial
/// that had the same id (study.db removed and the study begun again with another space):
/// nothing in it may be reused.
inline constexpr const char* kTrialKeyFile = "trial-key.txt";

/// The key of a trial's experiment (`params` and `extra` written over `config`) run with `seed`.
std::string trial_key(Config& config, const sdk::Assignment& params, const Overrides& extra, uint64_t seed);

/// True if `folder`'s kTrialKeyFile holds `key`.
bool trial_key_matches(const std::filesystem::path& folder, const std::string& key);

}  // namespace bachlab::host
