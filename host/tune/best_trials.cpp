#include "host/tune/best_trials.h"

#include "host/util/atomic_file.h"
#include "host/train/runner.h"
#include "host/tune/study_report.h"
#include "host/tune/trial_training.h"

#include <fmt/format.h>

#include <regex>
#include <set>

namespace bachlab::host {

namespace fs = std::filesystem;
using sdk::Scalar;

bool write_best_trial_config(const StudyConfig& study, const std::vector<StoredTrial>& trials, const fs::path& folder) {
  auto best = best_trial(trials);
  if (!best) return false;
  Config config = Config::load(study.file, study.overrides);
  Overrides extra = pinned_split(config);
  extra.emplace_back("experiment.name", study.file.stem().string() + "-best");
  extra.emplace_back("experiment.seed", static_cast<int64_t>(study.settings.seed));
  extra.emplace_back("train.epochs", best->record.epochs);
  const std::string header = fmt::format(
      "# The best trial (trial {}, {} = {}) of the study {}, as a runnable experiment:\n#   bachlab run {}\n",
      best->record.id, study.settings.objective, sdk::to_string(Scalar(best->objective)), study.file.string(),
      (folder / "best_trial.toml").string());
  write_file_atomic(folder / "best_trial.toml", header + experiment_toml(config, best->record.params, extra));
  return true;
}

std::vector<RunSummary> retrain_top_trials(const StudyConfig& study, const std::vector<StoredTrial>& trials,
                                           const TrainingTrialOptions& options) {
  std::vector<RunSummary> out;
  Config config = Config::load(study.file, study.overrides);
  const fs::path top = study.settings.folder / "top";
  fs::create_directories(top);
  const auto best = top_trials(trials, study.settings.top_k);
  auto top_name = [&](size_t rank) { return fmt::format("{}-trial-{:04d}", rank + 1, best[rank].record.id); };
  // A study that took more trials (max_trials raised) may rank others first: the retrains
  // of trials no longer in their place go, so top/ holds the current ranking alone.
  std::set<std::string> current;
  for (size_t rank = 0; rank < best.size(); ++rank) {
    current.insert(top_name(rank));
    current.insert(top_name(rank) + ".toml");
  }
  static const std::regex retrain_name("[0-9]+-trial-[0-9]+(\\.toml)?");
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(top, ec)) {
    const std::string name = entry.path().filename().string();
    if (std::regex_match(name, retrain_name) && !current.count(name)) fs::remove_all(entry.path(), ec);
  }
  int rank = 0;
  for (const auto& trial : best) {
    const std::string name = top_name(rank++);
    // A folder of this name may hold another study's retrain (study.db removed and the
    // study begun again with another seed or space): reused only when its key matches.
    Overrides keyed = pinned_split(config);
    keyed.emplace_back("experiment.name", name);
    keyed.emplace_back("experiment.output", ".");
    const std::string key = trial_key(config, trial.record.params, keyed, study.settings.seed);
    const fs::path root = top / name;
    if (fs::exists(root) && !trial_key_matches(root, key)) {
      if (options.progress)
        *options.progress << fmt::format("{}: retrained with other settings, seed or data than trial {} of this "
                                         "study; training it again\n",
                                         root.string(), trial.record.id);
      fs::remove_all(root);
    }
    fs::create_directories(root);
    if (!trial_key_matches(root, key)) write_file_atomic(root / kTrialKeyFile, key);
    const fs::path run_dir = newest_run_in(root);
    if (auto done = finished_run(run_dir, trial.record.epochs)) {
      check_run_photos(run_dir);
      out.push_back(*done);
      continue;
    }
    RunOptions run;
    run.progress = options.progress;
    run.plugin_paths = options.plugin_paths;
    run.overrides.epochs = trial.record.epochs;
    const fs::path file = top / (name + ".toml");
    if (!run_dir.empty()) {
      run.resume = run_dir;
    } else {
      Overrides extra = keyed;
      if (options.threads > 0) extra.emplace_back("train.threads", options.threads);
      write_file_atomic(file, fmt::format("# Rank {} of the study {}: trial {} ({} = {}) retrained and tested.\n", rank,
                                          study.file.string(), trial.record.id, study.settings.objective,
                                          sdk::to_string(Scalar(trial.objective))) +
                                  experiment_toml(config, trial.record.params, extra));
      run.overrides.seed = study.settings.seed;
    }
    out.push_back(run_experiment(file, run));
  }
  return out;
}

}  // namespace bachlab::host
