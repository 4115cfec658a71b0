#pragma once
// What a finished study gives besides its trials: the best trial as a runnable experiment
// (best_trial.toml), and the best trials retrained with the study's epochs and seed and
// evaluated on the test split.
//
//   <study>/best_trial.toml
//   <study>/top/<rank>-trial-<id>.toml       a retrained trial's experiment
//   <study>/top/<rank>-trial-<id>/<stamp>/   its run folder

#include "host/report/run_report.h"
#include "host/tune/study_config.h"
#include "host/tune/study_store.h"
#include "host/tune/trial_training.h"

#include <filesystem>
#include <vector>

namespace bachlab::host {

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
