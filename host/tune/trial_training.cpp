#include "host/tune/trial_training.h"

#include "host/config/toml_text.h"
#include "host/util/atomic_file.h"
#include "host/util/cache_key.h"
#include "host/train/runner.h"
#include "host/tune/study_report.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include <cmath>

namespace bachlab::host {

namespace fs = std::filesystem;

double run_objective(const RunSummary& run, const TuneSettings& settings) {
  double best = NAN;
  for (const auto& record : run.history) {
    const double v = metric_value(record, settings.objective);
    if (!std::isfinite(v)) continue;
    if (!std::isfinite(best) || (settings.maximize ? v > best : v < best)) best = v;
  }
  return best;
}

std::optional<RunSummary> finished_run(const fs::path& run_dir, int64_t epochs) {
  const fs::path file = run_dir / "metrics.json";
  if (run_dir.empty() || !fs::exists(file)) return std::nullopt;
  RunSummary summary = run_summary_from_json(nlohmann::json::parse(read_file(file)), file);
  if (static_cast<int64_t>(summary.history.size()) < epochs && !summary.stopped_early) return std::nullopt;
  return summary;
}

// The split must not move between trials and executions: pin it to the experiment's seed
// unless the config pins it itself.
Overrides pinned_split(Config& config) {
  sdk::ParamTable split = config.table("data.split");
  if (split.has("seed")) return {};
  sdk::ParamTable experiment = config.table("experiment");
  int64_t seed = static_cast<int64_t>(kDefaultSeed);
  if (experiment.has("seed"))
    if (const auto* s = std::get_if<int64_t>(&experiment.raw("seed"))) seed = *s;
  return {{"data.split.seed", seed}};
}

std::string trial_key(Config& config, const sdk::Assignment& params, const Overrides& extra, uint64_t seed) {
  return fmt::format("bachlab trial key 1\nseed {}\n", seed) +
         toml_digest_text(toml::parse(experiment_toml(config, params, extra)));
}

bool trial_key_matches(const fs::path& execution_root, const std::string& key) {
  const fs::path file = execution_root / kTrialKeyFile;
  return fs::exists(file) && read_file(file) == key;
}

TrialFunction training_trial_function(const StudyConfig& study, const TrainingTrialOptions& options) {
  return [study, options](const TrialRequest& request) -> TrialResult {
    Config config = Config::load(study.file, study.overrides);
    const Overrides pinned = pinned_split(config);
    double sum = 0;
    int64_t used = 0;
    for (int64_t e = 0; e < study.settings.executions_per_trial; ++e) {
      const std::string name = "execution-" + std::to_string(e);
      const fs::path execution_root = request.folder / name;
      Overrides keyed = pinned;  // everything the experiment file gets but the thread count
      keyed.emplace_back("experiment.name", name);
      keyed.emplace_back("experiment.output", ".");
      const uint64_t seed = study.settings.seed + static_cast<uint64_t>(e);
      const std::string key = trial_key(config, request.trial.params, keyed, seed);
      if (fs::exists(execution_root) && !trial_key_matches(execution_root, key)) {
        if (options.progress)
          *options.progress << fmt::format("trial {}: {} was trained with other settings or data; starting it again\n",
                                           request.trial.id, execution_root.string());
        fs::remove_all(execution_root);
      }
      fs::path run_dir = newest_run_in(execution_root);
      int64_t before = 0;
      if (run_dir.empty() && request.trial.resume_from >= 0) {
        // A promotion starts as a copy of its parent's run and trains it further.
        const fs::path parent = newest_run_in(request.parent_folder / name);
        auto parent_summary = finished_run(parent, 0);
        if (!parent_summary)
          throw Error(fmt::format("{}: trial {} continues trial {}, whose run has no metrics.json; the parent trial "
                                  "did not finish, so this one cannot continue it",
                                  (request.parent_folder / name).string(), request.trial.id,
                                  request.trial.resume_from));
        if (!trial_key_matches(request.parent_folder / name, key))
          throw Error(fmt::format("{}: trial {} continues trial {}, but that folder was trained with other settings "
                                  "(its {} differs); run the study again from a fresh folder",
                                  (request.parent_folder / name).string(), request.trial.id,
                                  request.trial.resume_from, kTrialKeyFile));
        // Copied under a temporary name and renamed, so a kill mid-copy leaves no half run.
        run_dir = execution_root / parent.filename();
        const fs::path partial = execution_root / (parent.filename().string() + ".partial");
        fs::create_directories(execution_root);
        fs::remove_all(partial);
        fs::copy(parent, partial, fs::copy_options::recursive);
        fs::remove(partial / "metrics.json");
        fs::rename(partial, run_dir);
      }
      fs::create_directories(execution_root);
      if (!trial_key_matches(execution_root, key)) write_file_atomic(execution_root / kTrialKeyFile, key);
      RunOptions run;
      run.progress = options.progress;
      run.plugin_paths = options.plugin_paths;
      run.overrides.epochs = request.trial.epochs;
      std::optional<RunSummary> summary = finished_run(run_dir, request.trial.epochs);
      if (summary) check_run_photos(run_dir);
      if (!summary) {
        const fs::path file = request.folder / (name + ".toml");
        if (!run_dir.empty()) {
          run.resume = run_dir;
        } else {
          Overrides extra = keyed;
          if (options.threads > 0) extra.emplace_back("train.threads", options.threads);
          write_file_atomic(file, fmt::format("# Trial {}, execution {} of the study {}: its experiment as run.\n",
                                              request.trial.id, e, study.file.string()) +
                                      experiment_toml(config, request.trial.params, extra));
          run.overrides.seed = seed;
        }
        summary = run_experiment(file, run);
      }
      if (request.trial.resume_from >= 0) {
        auto parent_summary = finished_run(newest_run_in(request.parent_folder / name), 0);
        before = parent_summary ? static_cast<int64_t>(parent_summary->history.size()) : 0;
      }
      for (const auto& record : summary->history)
        if (!std::isfinite(record.train.loss))
          throw Error(fmt::format("training diverged: train_loss was {} at epoch {} of execution {} (run folder {}); "
                                  "a smaller learning rate usually helps",
                                  record.train.loss, record.epoch, e, summary->run_dir));
      const double objective = run_objective(*summary, study.settings);
      sum += objective;
      used += static_cast<int64_t>(summary->history.size()) - before;
    }
    const auto n = static_cast<double>(study.settings.executions_per_trial);
    return TrialResult{sum / n, static_cast<int64_t>(std::llround(static_cast<double>(used) / n))};
  };
}

}  // namespace bachlab::host
