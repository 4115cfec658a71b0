// An ensemble of cross-validations ([ensemble.<name>] tables): the config run once per member
// with the member's overrides (another scale, another colour normalisation, another seed),
// each a complete cross-validation in <run>/member-<name> with the same folds, then every
// photo's out-of-fold probabilities averaged over the members. `predict` on the ensemble's
// folder averages the members' predictions the same way.
#include "host/train/run_steps.h"
#include "host/train/mlflow_log.h"

#include "host/train/memory_estimate.h"
#include "host/util/atomic_file.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>

#include <limits>
#include <map>
#include <ostream>

namespace bachlab::host {

namespace fs = std::filesystem;

bool ensemble_root(const ExperimentPlan& plan, const RunFile& run) {
  return !plan.ensemble.empty() && cross_validation_root(plan, run);
}

fs::path member_folder(const fs::path& run_dir, const std::string& name) { return run_dir / ("member-" + name); }

Config member_config(const std::string& config_toml, const std::string& config_file, const ExperimentPlan& plan,
                     const EnsembleMember& member) {
  Config config = Config::parse(config_toml, config_file);
  std::vector<std::string> overrides = {"~ensemble"};
  overrides.insert(overrides.end(), member.overrides.begin(), member.overrides.end());
  // A member with a seed of its own would otherwise draw other random folds.
  overrides.push_back("data.split.seed=" + std::to_string(plan.data.split.seed));
  config.apply_overrides(overrides, config_file + " [ensemble." + member.name + "] overrides");
  return config;
}

std::vector<std::string> check_ensemble_members(const Config& config, const ExperimentPlan& plan,
                                                const std::vector<fs::path>& plugin_paths, bool fits) {
  std::vector<std::string> lines;
  const std::string config_toml = config.resolved_toml(Config::Paths::absolute);
  for (const auto& member : plan.ensemble) {
    Opened m = open_config(member_config(config_toml, config.path().string(), plan, member), PlanOverrides{},
                           plugin_paths);
    if (fits) check_run_can_start(m.plan, config.path().string() + " [ensemble." + member.name + "]");
    std::string settings;
    for (const auto& [key, value] : m.plan.key_params())
      if (key == "model" || key == "scale" || key == "image_size" || key == "stain_normalize" || key == "patches")
        settings += (settings.empty() ? "" : ", ") + key + " " + value;
    lines.push_back("member " + member.name + ": " + settings);
  }
  return lines;
}

RunSummary write_fused_members(const fs::path& run_dir, const RunFile& run, const ExperimentPlan& plan,
                               const std::vector<RunSummary>& members, const std::string& config_toml) {
  // Every member's out-of-fold probabilities by photo.
  std::vector<std::map<std::string, const std::vector<double>*>> by_file(members.size());
  for (size_t m = 0; m < members.size(); ++m)
    for (const auto& part : members[m].predictions)
      for (size_t i = 0; i < part.files.size(); ++i) by_file[m][part.files[i].string()] = &part.probabilities[i];

  RunSummary fused = members.front();
  fused.run_dir = run_dir.string();
  fused.started = run.started;
  fused.params = plan.key_params();
  for (const auto& member : plan.ensemble) fused.ensemble_members.push_back(member.name);
  fused.seconds = 0;
  fused.stopped_early = false;
  fused.stop_reason.clear();  // the first that stopped says why
  for (const auto& m : members) {
    fused.seconds += m.seconds;
    fused.stopped_early = fused.stopped_early || m.stopped_early;
    if (fused.stop_reason.empty()) fused.stop_reason = m.stop_reason;
  }
  mean_history(members, fused.history, fused.history_sd);
  // The first member's rows, fold by fold, each averaged with the other members' row of
  // the same photo.
  fused.fold_val_accuracy.clear();
  std::vector<torch::Tensor> probabilities, labels;
  for (auto& part : fused.predictions) {
    std::vector<torch::Tensor> rows;
    for (size_t i = 0; i < part.files.size(); ++i) {
      std::vector<double>& row = part.probabilities[i];
      for (size_t m = 1; m < members.size(); ++m) {
        auto it = by_file[m].find(part.files[i].string());
        if (it == by_file[m].end() || it->second->size() != row.size())
          throw Error(fmt::format("{}: member {} has no out-of-fold prediction of {}; the members must "
                                  "cross-validate the same photos",
                                  run_dir.string(), plan.ensemble.at(m).name, part.files[i].string()));
        for (size_t c = 0; c < row.size(); ++c) row[c] += (*it->second)[c];
      }
      for (double& p : row) p /= static_cast<double>(members.size());
      rows.push_back(torch::tensor(row, torch::kFloat64));
    }
    probabilities.push_back(torch::stack(rows));
    labels.push_back(torch::tensor(part.labels, torch::kLong));
    fused.fold_val_accuracy.push_back(accuracy(probabilities.back(), labels.back()));
  }
  const torch::Tensor all = torch::cat(probabilities), all_labels = torch::cat(labels);
  fused.splits.clear();
  // Members may see patches of other sizes: a patch-level figure of the ensemble means nothing.
  fused.splits.push_back({"val", all.size(0), compute_metrics(all, all_labels, mean_log_loss(all, all_labels)),
                          std::numeric_limits<double>::quiet_NaN()});
  write_run_report(run_dir, fused, config_toml);
  return fused;
}

RunSummary run_ensemble(Opened opened, RunFile run, fs::path run_dir, bool fresh, const RunOptions& options) {
  if (!fresh) record_resumed_epochs(run_dir, run, options);
  const ExperimentPlan& plan = opened.plan;
  const std::string config_toml = opened.config.resolved_toml(Config::Paths::absolute);
  // Every member is planned before the first trains, so a mistake in the last member's
  // overrides is found now, not after hours of the first.
  std::vector<Opened> members;
  for (const auto& member : plan.ensemble) {
    members.push_back(open_config(member_config(config_toml, run.config_file, plan, member),
                                  PlanOverrides{run.epochs, run.seed}, options.plugin_paths));
    if (fresh) check_run_can_start(members.back().plan, run.config_file + " [ensemble." + member.name + "]");
  }
  std::shared_ptr<FolderLock> lock;  // a resume holds it already (run_experiment)
  if (fresh) {
    run_dir = create_run_folder(plan.experiment.output, plan.experiment.name);
    lock = hold_run_folder(run_dir);
    write_file_atomic(run_dir / "config.toml", config_toml);
    write_run_file(run_dir, run);
  }
  const std::shared_ptr<MlflowLog> mlflow = open_mlflow_log(plan.experiment, run_dir, opened.config, options.progress);
  std::vector<RunSummary> summaries;
  for (size_t m = 0; m < members.size(); ++m) {
    const fs::path folder = member_folder(run_dir, plan.ensemble[m].name);
    const bool member_fresh = !fs::exists(folder / "run.json");
    RunFile member_run = member_fresh ? run : read_run_file(folder);
    if (options.progress)
      *options.progress << fmt::format("{}: ensemble member {} of {}, \"{}\", in {}\n", plan.experiment.name, m + 1,
                                       members.size(), plan.ensemble[m].name, folder.string());
    summaries.push_back(cross_validate(std::move(members[m]), member_run, folder, member_fresh, options));
  }
  // The misclassified photos' heatmaps stay in the members' fold folders: the members may
  // see patches of other sizes, which share no grid to draw.
  RunSummary fused = write_fused_members(run_dir, run, plan, summaries, config_toml);
  if (options.progress)
    *options.progress << fmt::format("{}: ensemble of {} cross-validations, out-of-fold accuracy {:.4f}; wrote {}\n",
                                     plan.experiment.name, members.size(), fused.split("val")->metrics.accuracy,
                                     (run_dir / "report.html").string());
  if (mlflow) {
    mlflow->log_summary(fused);
    mlflow->end(MlflowLog::Status::finished);
  }
  return fused;
}

}  // namespace bachlab::host
