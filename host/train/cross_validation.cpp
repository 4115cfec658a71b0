// k-fold cross-validation: each fold a complete run folder, then the pooled out-of-fold
// summary of the whole (see run_steps.h).
#include "host/train/run_steps.h"
#include "host/train/mlflow_log.h"

#include "host/util/atomic_file.h"
#include "host/util/time_text.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <ostream>

namespace bachlab::host {

namespace fs = std::filesystem;

bool cross_validation_root(const ExperimentPlan& plan, const RunFile& run) {
  return plan.data.split.folds > 0 && !run.fold && !run.refit;
}

fs::path refit_folder(const fs::path& run_dir) { return run_dir / "refit"; }

fs::path fold_folder(const fs::path& run_dir, int fold) { return run_dir / fmt::format("fold-{}", fold + 1); }

fs::path aggregator_file(const fs::path& run_dir) { return run_dir / "aggregator.json"; }

void apply_learned_aggregation(const fs::path& run_dir, std::vector<RunSummary>& folds,
                               std::vector<ValPrediction>& predictions) {
  std::vector<torch::Tensor> features, labels;
  std::vector<int> groups;
  for (size_t k = 0; k < predictions.size(); ++k) {
    const ValPrediction& p = predictions[k];
    if (!p.features.defined() || p.features.size(0) != p.labels.size(0))
      throw Error(fmt::format("fold {} has no photo features for the learned aggregator", k + 1));
    features.push_back(p.features);
    labels.push_back(p.labels);
    groups.insert(groups.end(), static_cast<size_t>(p.labels.size(0)), static_cast<int>(k));
  }
  const torch::Tensor all_features = torch::cat(features), all_labels = torch::cat(labels);
  const int64_t classes = predictions.front().probabilities.size(1);
  const torch::Tensor cross_fitted = cross_fitted_probabilities(all_features, all_labels, groups, classes);
  int64_t row = 0;
  for (size_t k = 0; k < predictions.size(); ++k) {
    ValPrediction& p = predictions[k];
    const int64_t n = p.labels.size(0);
    p.probabilities = cross_fitted.slice(0, row, row + n);
    row += n;
    p.loss = mean_log_loss(p.probabilities, p.labels);
    // The fold's own summary, from the fold's model with the aggregator of the other folds.
    RunSummary& fold = folds[k];
    for (auto& split : fold.splits)
      if (split.name == "val") split.metrics = compute_metrics(p.probabilities, p.labels, p.loss);
    const torch::Tensor rows = p.probabilities.to(torch::kFloat64).contiguous();
    for (auto& part : fold.predictions)
      if (part.split == "val")
        for (size_t i = 0; i < part.probabilities.size(); ++i) {
          const double* r = rows[static_cast<int64_t>(i)].data_ptr<double>();
          part.probabilities[i].assign(r, r + rows.size(1));
        }
  }
  // The aggregator `bachlab predict` uses with the refit model or the fold ensemble.
  write_file_atomic(aggregator_file(run_dir),
                    PhotoAggregator::fit(all_features, all_labels, classes).to_json().dump(2) + "\n");
}

void mean_history(const std::vector<RunSummary>& runs, std::vector<EpochRecord>& mean_out,
                  std::vector<EpochRecord>& sd_out) {
  mean_out.clear();
  sd_out.clear();
  size_t epochs = runs.front().history.size();
  for (const auto& r : runs) epochs = std::min(epochs, r.history.size());
  const auto n = static_cast<double>(runs.size());
  for (size_t e = 0; e < epochs; ++e) {
    EpochRecord mean;
    mean.epoch = runs.front().history[e].epoch;
    mean.lr = runs.front().history[e].lr;
    for (const auto& f : runs) {
      const EpochRecord& r = f.history[e];
      for (auto [to, from] : {std::pair{&mean.train, &r.train}, std::pair{&mean.val, &r.val}}) {
        to->loss += from->loss / n;
        to->accuracy += from->accuracy / n;
        to->auroc_micro += from->auroc_micro / n;
        to->auroc_macro += from->auroc_macro / n;
      }
      mean.seconds += r.seconds;
    }
    mean_out.push_back(mean);
    // The runs' spread around that mean, for the band around the curves.
    EpochRecord sd = mean;
    for (EpochMetrics EpochRecord::*to : {&EpochRecord::train, &EpochRecord::val}) {
      for (double EpochMetrics::*metric : {&EpochMetrics::loss, &EpochMetrics::accuracy, &EpochMetrics::auroc_micro,
                                           &EpochMetrics::auroc_macro}) {
        std::vector<double> values;
        for (const auto& f : runs) values.push_back((f.history[e].*to).*metric);
        (sd.*to).*metric = mean_and_sd(values).second;
      }
    }
    sd_out.push_back(sd);
  }
}

// The summary of a cross-validation from its folds' summaries and validation predictions,
// written as the run folder's report: the folds' out-of-fold predictions pooled (every image
// predicted once, by the model that did not train on it) give the "val" metrics; the
// history is the folds' mean per epoch.
RunSummary write_pooled_folds(const fs::path& run_dir, const RunFile& run, const std::vector<RunSummary>& folds,
                              const std::vector<ValPrediction>& predictions, const std::string& config_toml) {
  RunSummary base = folds.front();
  base.run_dir = run_dir.string();
  base.started = run.started;
  base.history.clear();
  base.history_sd.clear();
  base.splits.clear();
  base.seconds = 0;
  base.best_epoch = 0;
  base.stopped_early = false;
  base.stop_reason.clear();  // the first that stopped says why
  for (const auto& f : folds) {
    base.seconds += f.seconds;
    base.stopped_early = base.stopped_early || f.stopped_early;
    if (base.stop_reason.empty()) base.stop_reason = f.stop_reason;
    base.weights = f.weights;
    base.fold_val_accuracy.push_back(f.split("val")->metrics.accuracy);
  }
  // The out-of-fold rows only: each photo once, predicted by the fold that did not train on it.
  base.predictions.clear();
  for (const auto& f : folds)
    for (const auto& part : f.predictions)
      if (part.split == "val") base.predictions.push_back(part);
  mean_history(folds, base.history, base.history_sd);
  std::vector<torch::Tensor> probabilities, labels;
  double loss = 0;
  int64_t images = 0, patch_correct = 0, patch_total = 0;
  for (const auto& p : predictions) {
    probabilities.push_back(p.probabilities);
    labels.push_back(p.labels);
    loss += p.loss * static_cast<double>(p.labels.size(0));
    images += p.labels.size(0);
    patch_correct += p.patch_correct;
    patch_total += p.patch_total;
  }
  base.splits.push_back({"val", images,
                         compute_metrics(torch::cat(probabilities), torch::cat(labels), loss / static_cast<double>(images)),
                         patch_accuracy(patch_correct, patch_total)});
  write_run_report(run_dir, base, config_toml);
  return base;
}

// k-fold cross-validation: fold k trains in <run>/fold-<k> (a complete run folder each, so
// `bachlab eval` and `predict` take it), then the run folder itself gets the pooled
// summary, then with [train] refit one more model trains on every photo in <run>/refit. A
// killed cross-validation resumes each fold (and the refit) where it stopped; finished
// folds are only predicted again, not retrained.
RunSummary cross_validate(Opened opened, RunFile run, fs::path run_dir, bool fresh, const RunOptions& options) {
  if (!fresh) record_resumed_epochs(run_dir, run, options);
  const ExperimentPlan& plan = opened.plan;
  const std::string config_toml = opened.config.resolved_toml(Config::Paths::absolute);
  std::shared_ptr<FolderLock> lock;  // a resume holds it already (run_experiment)
  if (fresh) {
    if (run_dir.empty()) run_dir = create_run_folder(plan.experiment.output, plan.experiment.name);
    fs::create_directories(run_dir);
    lock = hold_run_folder(run_dir);
    write_file_atomic(run_dir / "config.toml", config_toml);
    write_run_file(run_dir, run);
  }
  const std::shared_ptr<MlflowLog> mlflow = open_mlflow_log(plan.experiment, run_dir, opened.config, options.progress);
  std::vector<RunSummary> folds;
  std::vector<ValPrediction> predictions;
  double trained_seconds = 0;  // of the folds trained from scratch by this process
  int trained_folds = 0;
  for (int k = 0; k < plan.data.split.folds; ++k) {
    const fs::path folder = fold_folder(run_dir, k);
    const bool fold_fresh = !fs::exists(folder / "run.json");
    // The whole run's time left: the folds so far, at their mean, for the folds left and
    // the refit (one more model of the same recipe).
    if (options.progress && trained_folds > 0) {
      const int left = plan.data.split.folds - k + (plan.train.refit ? 1 : 0);
      *options.progress << fmt::format("{}: fold {} of {}; the folds so far took {} each, about {} left{}\n",
                                       plan.experiment.name, k + 1, plan.data.split.folds,
                                       format_duration(trained_seconds / trained_folds),
                                       format_duration(trained_seconds / trained_folds * left),
                                       plan.train.refit ? " (with the refit)" : "");
    }
    const auto fold_start = std::chrono::steady_clock::now();
    RunFile fold_run = run;
    fold_run.fold = k;
    if (!fold_fresh) fold_run = read_run_file(folder);
    // Each fold plans the experiment again: a model of its own, initialised from the seed.
    Opened fold = open_config(Config::parse(config_toml, run.config_file), PlanOverrides{run.epochs, run.seed},
                              options.plugin_paths);
    predictions.emplace_back();
    folds.push_back(train_run(std::move(fold), fold_run, folder, fold_fresh, options, &predictions.back()));
    if (fold_fresh) {
      trained_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - fold_start).count();
      ++trained_folds;
    }
  }
  if (plan.photo.aggregate == Aggregate::learned) apply_learned_aggregation(run_dir, folds, predictions);
  RunSummary summary = write_pooled_folds(run_dir, run, folds, predictions, config_toml);
  if (options.progress)
    *options.progress << fmt::format("{}: {}-fold cross-validation, out-of-fold accuracy {:.4f}; wrote {}\n",
                                     plan.experiment.name, plan.data.split.folds, summary.split("val")->metrics.accuracy,
                                     (run_dir / "report.html").string());
  if (plan.train.refit) {
    // The model to ship: the same recipe on every photo. The cross-validation above is
    // its estimate; nothing is left to measure the refit itself on.
    const fs::path folder = refit_folder(run_dir);
    const bool refit_fresh = !fs::exists(folder / "run.json");
    RunFile refit_run = run;
    refit_run.refit = true;
    if (!refit_fresh) refit_run = read_run_file(folder);
    if (options.progress)
      *options.progress << fmt::format("{}: refit on all {} photos ([train] refit), in {}\n", plan.experiment.name,
                                       summary.split("val")->size, folder.string());
    Opened refit = open_config(Config::parse(config_toml, run.config_file), PlanOverrides{run.epochs, run.seed},
                               options.plugin_paths);
    train_run(std::move(refit), refit_run, folder, refit_fresh, options);
  }
  if (mlflow) {
    mlflow->log_summary(summary);
    mlflow->end(MlflowLog::Status::finished);
  }
  return summary;
}

}  // namespace bachlab::host
