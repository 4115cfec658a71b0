#pragma once
// Running an experiment end to end, and using a finished run again:
//   run_experiment:  config -> plan -> data (prepared, split) -> trainer -> final metrics
//                    on every split -> run folder (see host/report/run_report.h)
//   evaluate_run:    rebuild a run's model from its folder and measure it again
//   predict_images:  class probabilities for new photos, preprocessed as in training
// (runner.cpp, evaluation.cpp, prediction.cpp; cross_validation.cpp for k-fold; the run
// folder itself in run_folder.h)
// A run folder holds run.json with what is needed to reopen it: the config file it was
// started from (its relative paths are resolved against that file's folder), the
// command-line overrides, and the normalization fitted on the training split.

#include "host/data/prepare.h"
#include "host/report/heatmap.h"
#include "host/report/run_report.h"
#include "host/train/data_parallel.h"
#include "host/train/experiment.h"
#include "host/train/run_folder.h"

#include <filesystem>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace bachlab::host {

struct RunOptions {
  PlanOverrides overrides;
  /// KEY=VALUE settings from the command line (Config::apply_overrides), on top of the
  /// config file; the run folder's config.toml records the result. Not for a resumed run,
  /// which keeps its saved config.
  std::vector<std::string> config_overrides;
  /// Continue the run in this folder from its last checkpoint.
  std::optional<std::filesystem::path> resume;
  /// Continue the newest run of the config's experiment (error if there is none).
  bool resume_latest = false;
  /// Progress and log lines; null for none.
  std::ostream* progress = nullptr;
  /// Draw a redrawn progress bar (a terminal) rather than one line per epoch.
  bool interactive = false;
  /// Extra plugin folders (before the config's own).
  std::vector<std::filesystem::path> plugin_paths;
  /// Train as one rank of this data-parallel group (`run --nproc`); rank 0 alone writes
  /// the run folder and returns the full summary, the others an empty one. Null: alone.
  std::shared_ptr<DataParallel> parallel;
  /// The run trains data-parallel (`--nproc`, `--nnodes`): set in the launcher too, before
  /// any rank exists, so check_experiment refuses what the ranks would.
  bool data_parallel = false;
};

/// Trains `config_file` (ignored when options.resume names a run folder) and writes its
/// run folder. Returns the summary that metrics.json holds.
RunSummary run_experiment(const std::filesystem::path& config_file, const RunOptions& options);

/// Everything `run_experiment` checks before its first epoch, without training: the config
/// with its overrides, every plugin built, and the photos listed (host::check_dataset).
/// Throws the Error run_experiment would. A resumed run (options.resume) checks nothing.
void check_experiment(const std::filesystem::path& config_file, const RunOptions& options);

/// The config of a new run of `config_file` with `options` (its KEY=VALUE overrides, plugin
/// folders), opened and checked as check_experiment opens it (its photos aside): its
/// resolved_toml(Config::Paths::absolute) is what the run folder's config.toml would hold,
/// which `bachlab config` prints. Throws the Error a run would.
Config new_run_config(const std::filesystem::path& config_file, const RunOptions& options);

/// Plans every [ensemble.<name>] member of `plan` (made from `config`) as a run would and,
/// with `fits`, checks that it fits (check_run_can_start: memory and patch size, which reads the
/// photos' sizes);
/// throws the Error a run would. One line per member saying what it trains, for `bachlab
/// check`; empty without an ensemble.
std::vector<std::string> check_ensemble_members(const Config& config, const ExperimentPlan& plan,
                                                const std::vector<std::filesystem::path>& plugin_paths, bool fits);

/// Re-measures the run in `run_dir` with its final weights on its own split, rewrites
/// metrics.json, the figures and report.html, and returns the summary.
/// `overrides` (KEY=VALUE) change the saved config for this evaluation only, e.g.
/// data.root=/elsewhere/BACH when the photos moved.
RunSummary evaluate_run(const std::filesystem::path& run_dir, std::ostream* progress = nullptr,
                        const std::vector<std::string>& overrides = {});

/// One image's prediction.
struct ImagePrediction {
  std::string image;
  std::string predicted;
  std::vector<double> probabilities;  ///< One per class, in the run's class order.
  /// Every grid patch's position and probabilities (one "patch", the whole photo, without
  /// [data.patches]): what a heatmap draws.
  PhotoPatches patches;
  /// The patches' side (0: the whole photo) and the image they were cut from, (3, H, W)
  /// uint8 as the model saw it (preprocessed as in training).
  int64_t patch_size = 0;
  torch::Tensor photo;
  /// The side of one of `photo`'s pixels in micrometres ([data] microns_per_pixel over the
  /// resize), for the heatmap's scale bar; 0 when unknown or when the resize squeezed the photo.
  double microns_per_pixel = 0;
  /// With stain normalisation, the photo resized the same way but not normalised (3, H, W)
  /// uint8: the photo as taken, for the heatmap; undefined otherwise.
  torch::Tensor photo_as_taken;
  /// Which model(s) gave the probabilities: "the model of RUN", "the mean of the 5 fold
  /// models of RUN", ...
  std::string source;
};

/// Predictions of the run's final model for `images` (TIFF, PNG or JPEG), with the
/// training preprocessing (resize to image_size, the run's normalization) and the run's
/// photo-level prediction (patch grid, TTA, aggregation). For the folder of a k-fold
/// cross-validation, the k fold models' patch probabilities are averaged (an ensemble).
/// `plugin_paths`: plugin folders searched besides the built-in ones (as `run
/// --plugin-path` gives them).
std::vector<ImagePrediction> predict_images(const std::filesystem::path& run_dir,
                                            const std::vector<std::filesystem::path>& images,
                                            std::vector<std::string>* classes = nullptr,
                                            const std::vector<std::filesystem::path>& plugin_paths = {});

/// The final model of `run_dir` (as `predict` uses it: a fold ensemble, a refit, an
/// ensemble) measured on the labelled photos under `data_root`, in the layout the run's
/// config gives (BACH's Photos/<class>/ or one folder per class): the same metrics as the
/// run's own splits, as one split named "external". Writes nothing; throws Error naming the
/// folder when its classes are not the run's.
RunSummary evaluate_on_photos(const std::filesystem::path& run_dir, const std::filesystem::path& data_root,
                              const std::vector<std::filesystem::path>& plugin_paths = {});

/// What `bachlab export` wrote.
struct ExportedModel {
  std::filesystem::path model;          ///< <out>/model.pt: TorchScript, forward(x) -> probabilities
  std::filesystem::path preprocessing;  ///< <out>/preprocessing.json
  std::filesystem::path from;           ///< The run folder whose model it is (a CV's refit).
  int64_t input_size = 0;               ///< Side of the square input (photo or patch).
  double max_difference = 0;            ///< Saved module against the run's model on a test batch.
};

/// Writes the final model of `run_dir` as TorchScript that Python (`torch.jit.load`) and
/// C++ (`torch::jit::load`) call without bachlab - forward(x), x float (N, 3, S, S) RGB in
/// [0,1], gives the class probabilities with the run's normalisation inside - and
/// preprocessing.json with everything `predict` does around it (resize, stain target,
/// patch grid, TTA, aggregation). A cross-validation exports its refit; without one, and
/// for an ensemble, it names the folders that can be exported. Files appear complete or
/// not at all; the saved module is loaded back and checked against the run's model.
ExportedModel export_model(const std::filesystem::path& run_dir, const std::filesystem::path& out_dir,
                           const std::vector<std::filesystem::path>& plugin_paths = {});

/// The heatmap figure of prediction `p` (host/report/heatmap.h): its photo, patches and
/// probabilities, the photo as taken and which model(s) gave them; titled by the file's name.
HeatmapInput heatmap_input(const ImagePrediction& p, const std::vector<std::string>& classes,
                           const std::string& true_class = "");

/// The model's input from a [0,1] float batch under `normalization`; empty (no work) for
/// unit statistics.
BatchTransform normalization_transform(const Normalization& normalization);

}  // namespace bachlab::host
