// `bachlab eval`: a finished run measured again with its own weights on its own split, or
// (--data) its model measured on labelled photos from elsewhere.
#include "host/train/run_steps.h"

#include "host/eval/metrics.h"
#include "host/util/atomic_file.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <ostream>

namespace bachlab::host {

namespace fs = std::filesystem;

namespace {

RunSummary evaluate_one(const fs::path& run_dir, std::ostream* progress, ValPrediction* val_out,
                        const std::vector<std::string>& overrides) {
  RunFile run = read_run_file(run_dir);
  Config saved = load_run_config(run_dir, run);
  saved.apply_overrides(overrides);
  Opened opened = open_config(std::move(saved), PlanOverrides{run.epochs, run.seed}, {});
  ExperimentPlan& plan = opened.plan;
  if (ensemble_root(plan, run)) {
    // An ensemble: each member's cross-validation again, then the fused summary.
    std::vector<RunSummary> members;
    for (const auto& member : plan.ensemble)
      members.push_back(evaluate_one(member_folder(run_dir, member.name), progress, nullptr, overrides));
    return write_fused_members(run_dir, run, plan, members, opened.config.resolved_toml(Config::Paths::absolute));
  }
  if (cross_validation_root(plan, run)) {
    // A cross-validation: each fold again, then the pooled summary.
    std::vector<RunSummary> folds;
    std::vector<ValPrediction> predictions;
    for (int k = 0; k < plan.data.split.folds; ++k) {
      predictions.emplace_back();
      folds.push_back(evaluate_one(fold_folder(run_dir, k), progress, &predictions.back(), overrides));
    }
    if (plan.photo.aggregate == Aggregate::learned) apply_learned_aggregation(run_dir, folds, predictions);
    return write_pooled_folds(run_dir, run, folds, predictions, opened.config.resolved_toml(Config::Paths::absolute));
  }
  SplitData data = load_data(plan, run);
  check_same_photos(run_dir, data.discovered, plan.data.source == DataSource::synthetic, "Evaluating");

  // The split is recomputed from the config; if the photos changed since the run, the
  // numbers would silently be of other images, so compare with the saved file lists.
  const fs::path check = run_dir / "split.check.csv";
  write_split(check, data.prepared.dataset, data.split);
  const bool same = read_file(check) == read_file(run_dir / "split.csv");
  fs::remove(check);
  if (!same)
    throw Error((run_dir / "split.csv").string() +
                ": the dataset no longer gives this run's split (photos were added, removed or renamed since); "
                "evaluate with the original photos, or start a new run");

  Trainer trainer(plan.trainer_parts(), plan.train, plan.experiment.seed, normalization_transform(run.normalization));
  trainer.set_checkpoint_dir(run_dir / "checkpoints");
  trainer.set_progress(progress, false);
  if (!trainer.resume())
    throw Error((run_dir / "checkpoints" / "last.pt").string() +
                ": no checkpoint; the run never finished an epoch. Resume it with `bachlab run --resume " +
                run_dir.string() + "`");
  if (plan.train.restore_best && trainer.best_epoch() > 0) trainer.load_weights(run_dir / "checkpoints" / "best.pt");
  torch::set_num_threads(static_cast<int>(effective_threads(plan.train.threads)));
  RunSummary summary = summarize(plan, run, run_dir, trainer, data, class_names(plan, data), val_out);
  if (const std::string note = write_mistake_heatmaps(run_dir, summary, {}); !note.empty() && progress)
    *progress << note << "\n";
  write_run_report(run_dir, summary, opened.config.resolved_toml(Config::Paths::absolute));
  return summary;
}

}  // namespace

RunSummary evaluate_on_photos(const fs::path& run_dir, const fs::path& data_root,
                              const std::vector<fs::path>& plugin_paths) {
  const RunFile run = read_run_file(run_dir);
  Config saved = load_run_config(run_dir, run);
  DataConfig data = read_data_config(saved);
  data.source = DataSource::folder;
  data.root = fs::absolute(data_root).lexically_normal();
  data.root_from = "--data";
  const Dataset photos = discover_dataset(data);
  const fs::path metrics_file = run_dir / "metrics.json";
  if (!fs::exists(metrics_file))
    throw Error(run_dir.string() + ": the run has not finished (no metrics.json); finish it with `bachlab run "
                "--resume " + outermost_run_folder(run_dir).string() + "`, then evaluate it");
  RunSummary summary = run_summary_from_json(nlohmann::json::parse(read_file(metrics_file)), metrics_file);
  if (photos.classes != summary.classes)
    throw Error(fmt::format("{}: its classes ({}) are not the run's ({}), in name and order; the model's outputs "
                            "would be read as other classes",
                            data.root.string(), fmt::join(photos.classes, ", "), fmt::join(summary.classes, ", ")));
  std::vector<std::string> classes;
  const std::vector<ImagePrediction> predictions = predict_images(run_dir, photos.files, &classes, plugin_paths);
  std::vector<float> rows;
  for (const auto& p : predictions) rows.insert(rows.end(), p.probabilities.begin(), p.probabilities.end());
  const auto n = static_cast<int64_t>(predictions.size());
  const torch::Tensor probabilities = torch::tensor(rows).view({n, static_cast<int64_t>(classes.size())});
  const torch::Tensor labels = torch::tensor(photos.labels, torch::kLong);
  SplitResult external;
  external.name = "external";
  external.size = n;
  external.metrics = compute_metrics(probabilities, labels, mean_log_loss(probabilities, labels));
  summary.splits = {external};
  summary.skipped = photos.skipped;
  summary.data_root = data.root;
  return summary;
}

RunSummary evaluate_run(const fs::path& run_dir, std::ostream* progress, const std::vector<std::string>& overrides) {
  read_run_file(run_dir);  // "not a run folder" before any lock file is made in it
  const auto lock = hold_run_folder(run_dir);
  return evaluate_one(run_dir, progress, nullptr, overrides);
}

}  // namespace bachlab::host
