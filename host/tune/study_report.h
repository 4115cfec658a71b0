#pragma once
// What a study leaves in its folder besides study.db, rewritten after every trial so a
// running study can be watched (each file written to a temporary name, then renamed):
//   trials.csv, trials.json     one row per trial: state, values, objective, epochs, time
//   best_so_far.png             the best objective after each trial, with every trial's own
//   objective_<parameter>.png   the objective against each tuned parameter
//   study.html                  all of it on one page: the trials table, the best so far,
//                               each parameter's slice and a simple importance
// and `bachlab tune --status` prints format_status().

#include "host/tune/study_store.h"
#include "host/tune/tune_config.h"

#include <bachlab/sdk/search_space.h>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace bachlab::host {

/// id,state,<each dimension>,epochs,epochs_used,resume_from,<objective>,seconds,attempts,message
std::string format_trials_csv(const std::vector<StoredTrial>& trials, const sdk::SearchSpace& space,
                              const TuneSettings& settings);

/// {"objective": ..., "direction": ..., "trials": [{id, state, params, objective, ...}]}
nlohmann::json trials_json(const std::vector<StoredTrial>& trials, const TuneSettings& settings);

/// The best complete trial (by oriented score; among Hyperband's, those that trained
/// longest), or nullopt if none completed.
std::optional<StoredTrial> best_trial(const std::vector<StoredTrial>& trials);

/// Up to `k` best complete trials, best first, ranked as best_trial() does.
std::vector<StoredTrial> top_trials(const std::vector<StoredTrial>& trials, int64_t k);

/// The tuned values of `trials` (best first, as top_trials gives them): one row per trial
/// with its rank, id and objective and a column for every dimension of `space` that is not
/// fixed ("-" where a conditional dimension was inactive).
std::string format_trial_settings(const std::vector<StoredTrial>& trials, const sdk::SearchSpace& space,
                                  const TuneSettings& settings);

/// Every trial's objective (dots, failed ones left out) and the best so far (a line), by trial id.
cv::Mat draw_best_so_far(const std::vector<StoredTrial>& trials, const TuneSettings& settings);

/// The objective of every complete trial against one dimension's value: a numeric axis
/// for int and float (logarithmic for log floats), one column per value otherwise.
cv::Mat draw_objective_against(const std::vector<StoredTrial>& trials, const sdk::Dimension& dimension,
                               const TuneSettings& settings);

/// objective_model.filters.png style file name for a dimension.
std::string objective_plot_name(const std::string& dimension);

/// How much one tuned parameter goes with the objective, over the complete trials in which
/// it was set, one parameter at a time (no interactions).
struct ParameterImportance {
  std::string name;
  /// True for int and float parameters (rank correlation), false for choice and bool
  /// (correlation ratio).
  bool numeric = false;
  /// Complete trials with a finite objective in which the parameter was set.
  int64_t trials = 0;
  /// Spearman's rank correlation rho between the parameter and the objective (numeric), or
  /// the correlation ratio eta^2 (the share of the objective's variance between the
  /// parameter's values). NaN with fewer than 3 trials, one value of the parameter, or
  /// one value of the objective.
  double statistic = 0;
  /// The share of the objective explained, 0..1: rho^2 or eta^2; NaN as above.
  double importance = 0;
  /// Which values scored better: "larger", "smaller" (numeric) or the value with the best
  /// mean objective; empty when importance is NaN.
  std::string better;
};

/// One entry per dimension of `space` that is not fixed, most important first (NaN last).
std::vector<ParameterImportance> parameter_importance(const std::vector<StoredTrial>& trials,
                                                      const sdk::SearchSpace& space, const TuneSettings& settings);

/// The study page: what the study is and how far it got, the best trial, the best so far,
/// each parameter's importance and slice (inlined from the PNGs already in `folder`, so the
/// page is one portable file), and a table of every trial with its state (complete, failed
/// with its message, running, interrupted, waiting), values, objective, epochs and time,
/// linking each trial's run report when `artifacts` holds one.
std::string format_study_html(const std::filesystem::path& folder, const std::vector<StoredTrial>& trials,
                              const sdk::SearchSpace& space, const TuneSettings& settings);

/// The study page's file in `folder`: study.html.
std::filesystem::path study_page(const std::filesystem::path& folder);

/// Writes trials.csv, trials.json, best_so_far.png, one objective_<name>.png per tuned
/// dimension and then study.html into `folder`, each atomically.
void write_study_outputs(const std::filesystem::path& folder, const std::vector<StoredTrial>& trials,
                         const sdk::SearchSpace& space, const TuneSettings& settings);

/// Progress of the study in `folder`: trials by state, the best so far with its values,
/// running trials with their workers, failures with their messages. Throws Error naming
/// the folder if it holds no study.
/// `folder` may also be a storage URL ("postgresql://user@host/db", "sqlite:///x.db").
std::string format_status(const std::filesystem::path& folder);
/// The same for an open study (e.g. one on PostgreSQL), headed "study <label>".
std::string format_status(const StudyStore& store, const std::string& label);

}  // namespace bachlab::host
