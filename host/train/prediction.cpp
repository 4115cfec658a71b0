// `bachlab predict`: a run's final model (or a cross-validation's fold ensemble) on new
// photos, preprocessed as the run's training photos were.
#include "host/train/run_steps.h"

#include "host/util/atomic_file.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <memory>

namespace bachlab::host {

namespace fs = std::filesystem;

namespace {

// An ensemble's folder: each member's prediction (its refit or fold ensemble, with its own
// preprocessing), the photo probabilities averaged; the patches shown are the first
// member's (members may cut patches of other sizes).
std::vector<ImagePrediction> predict_ensemble(const fs::path& run_dir, const ExperimentPlan& plan,
                                              const std::vector<fs::path>& images,
                                              std::vector<std::string>* classes_out,
                                              const std::vector<fs::path>& plugin_paths) {
  std::vector<ImagePrediction> out;
  std::vector<std::string> classes;
  for (const auto& member : plan.ensemble) {
    std::vector<ImagePrediction> m = predict_images(member_folder(run_dir, member.name), images, &classes, plugin_paths);
    if (out.empty()) {
      out = std::move(m);
      continue;
    }
    for (size_t i = 0; i < out.size(); ++i)
      for (size_t c = 0; c < out[i].probabilities.size(); ++c) out[i].probabilities[c] += m[i].probabilities[c];
  }
  for (auto& p : out) {
    p.source = fmt::format("the mean of the {} members of the ensemble {}", plan.ensemble.size(), run_dir.string());
    for (double& v : p.probabilities) v /= static_cast<double>(plan.ensemble.size());
    const size_t best = std::max_element(p.probabilities.begin(), p.probabilities.end()) - p.probabilities.begin();
    p.predicted = best < classes.size() ? classes[best] : std::to_string(best);
  }
  if (classes_out) *classes_out = classes;
  return out;
}

}  // namespace

LoadedModel load_final_model(const fs::path& run_dir, const RunFile& run, const std::vector<fs::path>& plugin_paths) {
  Opened opened = open_config(load_run_config(run_dir, run), PlanOverrides{run.epochs, run.seed}, plugin_paths);
  LoadedModel out;
  out.plan = opened.plan;
  out.classes = out.plan.data.classes;
  out.stain_target = run.stain_target;
  const fs::path metrics = run_dir / "metrics.json";
  bool best = out.plan.train.restore_best;
  if (fs::exists(metrics)) {
    RunSummary summary = run_summary_from_json(nlohmann::json::parse(read_file(metrics)), metrics);
    out.classes = summary.classes;
    best = summary.weights == "best";
  }
  // Photos predicted one at a time (predict, a report's heatmaps): writing each one's
  // backbone features to the run's feature cache would only fill it.
  out.plan.train.feature_cache.disk = false;
  out.trainer = std::make_unique<Trainer>(out.plan.trainer_parts(), out.plan.train, out.plan.experiment.seed,
                                          normalization_transform(run.normalization));
  const fs::path checkpoints = run_dir / "checkpoints";
  out.trainer->load_weights(best && fs::exists(checkpoints / "best.pt") ? checkpoints / "best.pt"
                                                                          : checkpoints / "last.pt");
  return out;
}

std::vector<ImagePrediction> predict_images(const fs::path& run_dir, const std::vector<fs::path>& images,
                                            std::vector<std::string>* classes_out,
                                            const std::vector<fs::path>& plugin_paths) {
  RunFile run = read_run_file(run_dir);
  // A cross-validation's folder predicts with its refit model when it has one ([train]
  // refit: trained on every photo), else with the ensemble of its fold models: each fold's
  // probabilities per patch (after TTA), averaged, then aggregated per photo.
  std::vector<LoadedModel> models;
  std::shared_ptr<const PhotoAggregator> aggregator;
  {
    Opened opened = open_config(load_run_config(run_dir, run), PlanOverrides{run.epochs, run.seed}, plugin_paths);
    if (ensemble_root(opened.plan, run)) return predict_ensemble(run_dir, opened.plan, images, classes_out, plugin_paths);
    const int folds = opened.plan.data.split.folds;
    const fs::path refit = refit_folder(run_dir);
    if (cross_validation_root(opened.plan, run) && opened.plan.train.refit) {
      if (!fs::exists(refit / "metrics.json"))
        throw Error(refit.string() + ": the refit model ([train] refit) has not finished training; finish it with "
                    "`bachlab run --resume " + run_dir.string() + "`");
      models.push_back(load_final_model(refit, read_run_file(refit), plugin_paths));
    } else if (cross_validation_root(opened.plan, run)) {
      for (int k = 0; k < folds; ++k) {
        const fs::path folder = fold_folder(run_dir, k);
        if (!fs::exists(folder / "checkpoints" / "last.pt"))
          throw Error(folder.string() + ": fold " + std::to_string(k + 1) + " of " + std::to_string(folds) +
                      " has no checkpoint, so the fold ensemble is incomplete; finish the cross-validation with "
                      "`bachlab run --resume " + run_dir.string() + "`");
        models.push_back(load_final_model(folder, read_run_file(folder), plugin_paths));
      }
    } else {
      models.push_back(load_final_model(run_dir, run, plugin_paths));
    }
    // A learned aggregator is fitted across the folds, after them: the cross-validation's
    // folder and its refit use it; a fold's own model keeps the mean its report shows.
    if (opened.plan.photo.aggregate == Aggregate::learned && !run.fold) {
      const fs::path root = run.refit ? run_dir.parent_path() : run_dir;
      const fs::path file = aggregator_file(root);
      if (!fs::exists(file))
        throw Error(file.string() + ": the learned photo aggregator ([eval.patches] aggregate = \"learned\") is "
                    "fitted when the cross-validation's folds have finished; finish it with `bachlab run --resume " +
                    root.string() + "`");
      aggregator = std::make_shared<const PhotoAggregator>(
          PhotoAggregator::from_json(nlohmann::json::parse(read_file(file), nullptr, false), file));
    }
  }
  PhotoPredictionSettings photo = models.front().plan.photo;
  photo.aggregator = aggregator;
  const std::string source =
      models.size() > 1 ? fmt::format("the mean of the {} fold models of {}", models.size(), run_dir.string())
      : fs::exists(refit_folder(run_dir) / "run.json") ? "the refit model of " + run_dir.string()
                                                       : "the model of " + run_dir.string();
  const ExperimentPlan& plan = models.front().plan;
  const std::vector<std::string>& classes = models.front().classes;
  torch::set_num_threads(static_cast<int>(effective_threads(plan.train.threads)));
  std::vector<ImagePrediction> out;
  for (const auto& image : images) {
    // One photo at a time: photos of other sizes give prepared images of other sizes. Each
    // fold model sees the photo as its own training photos were prepared (a stain target
    // fitted on its fold's training part), predicts every grid patch (after TTA), and the
    // folds' patch probabilities are averaged before the photo's aggregate.
    torch::Tensor first_photo, patch_sum;
    PhotoPatches patches;
    for (auto& m : models) {
      torch::Tensor photo = preprocess_photo(image, plan.data, m.stain_target).unsqueeze(0);
      Trainer& trainer = *m.trainer;
      PatchProbabilities model = [&trainer](const torch::Tensor& batch) { return trainer.predict({batch, {}}).probabilities; };
      PhotoPredictions prediction;
      try {
        prediction = predict_photos(photo, {}, model, plan.photo, true);
      } catch (const Error& e) {
        throw Error(image.string() + ": " + e.what());
      }
      const torch::Tensor p = prediction.patches.front().probabilities;
      patch_sum = patch_sum.defined() ? patch_sum + p : p;
      if (!first_photo.defined()) {
        first_photo = photo;
        patches = prediction.patches.front();
      }
    }
    patches.probabilities = patch_sum / static_cast<double>(models.size());
    torch::Tensor probabilities = photo_probabilities(counted_probabilities(patches), photo).to(torch::kFloat64).contiguous();
    ImagePrediction p;
    p.image = image.string();
    const double* row = probabilities.data_ptr<double>();
    p.probabilities.assign(row, row + probabilities.numel());
    const size_t best_class = std::max_element(p.probabilities.begin(), p.probabilities.end()) - p.probabilities.begin();
    p.predicted = best_class < classes.size() ? classes[best_class] : std::to_string(best_class);
    p.patches = std::move(patches);
    p.patch_size = plan.photo.patch_size;
    p.photo = first_photo[0];
    if (plan.data.scale > 0) p.microns_per_pixel = plan.data.microns_per_pixel / plan.data.scale;
    if (plan.data.stain_normalize != StainMethod::none) {
      DataConfig as_taken = plan.data;
      as_taken.stain_normalize = StainMethod::none;
      as_taken.stain_reference.clear();
      p.photo_as_taken = preprocess_photo(image, as_taken, std::nullopt);
    }
    p.source = source;
    out.push_back(std::move(p));
  }
  if (classes_out) *classes_out = classes;
  return out;
}

HeatmapInput heatmap_input(const ImagePrediction& p, const std::vector<std::string>& classes,
                           const std::string& true_class) {
  HeatmapInput input = heatmap_input(p.photo, p.patches, p.patch_size, classes, torch::tensor(p.probabilities),
                                     fs::path(p.image).filename().string(), true_class);
  if (p.photo_as_taken.defined()) input.photo_as_taken_rgb = rgb_image(p.photo_as_taken);
  input.source = p.source;
  input.microns_per_pixel = p.microns_per_pixel;
  return input;
}

}  // namespace bachlab::host
