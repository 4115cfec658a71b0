#pragma once
// Photo-level prediction: a photo is covered by a grid of square patches (the whole photo,
// edges included), each patch's class probabilities are averaged over test-time
// augmentations, and the patches' probabilities are aggregated into one prediction per
// photo. With patch size 0 the "grid" is the whole photo, one input per photo.
//
// Everything here takes the model as a callable (PatchProbabilities: a batch of patches in,
// class probabilities out), so the same functions serve validation during training, the
// final test, `bachlab eval`, `bachlab predict`, a fold ensemble (a callable averaging k
// models) and heatmaps (keep_patches gives every patch's probabilities with its position).
//
//   [eval]          tta = "none" | "flips" | "d4"
//   [eval.patches]  stride (default: the patch size),
//                   aggregate = "mean" | "vote" | "max" | "learned" (photo_aggregator.h)
// The patch size and min_tissue come from [data.patches] (host/train/patch_sampler.h).

#include "host/config/choice.h"
#include "host/eval/photo_aggregator.h"

#include <bachlab/sdk/param_table.h>

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace bachlab::host {

class Config;

/// [eval.patches] aggregate: how one photo's patch probabilities become its own.
///   mean     the mean probability
///   vote     the share of patches calling each class, ties broken by mean probability
///   max      each class's largest patch probability, normalised
///   learned  `aggregator` reads the photo's patch probabilities; it is fitted across a
///            cross-validation's folds, so until then (a fold's own validation) the mean
///            stands in
enum class Aggregate { mean, vote, max, learned };
inline const Choice<Aggregate> kAggregates{
    {"mean", Aggregate::mean}, {"vote", Aggregate::vote}, {"max", Aggregate::max}, {"learned", Aggregate::learned}};

/// [eval] tta: test-time augmentation, averaged per patch: none, flips (identity,
/// horizontal, vertical, both) or d4 (the 8 rotations by multiples of 90 degrees with and
/// without a horizontal flip).
enum class Tta { none, flips, d4 };
inline const Choice<Tta> kTtas{{"none", Tta::none}, {"flips", Tta::flips}, {"d4", Tta::d4}};

struct PhotoPredictionSettings {
  /// Side of the square patches; 0 predicts whole photos. From [data.patches] size.
  int64_t patch_size = 0;
  /// Pixels between neighbouring grid patches; 0 means patch_size (no overlap). The last
  /// row and column sit on the photo's edge, so they may overlap the one before.
  int64_t stride = 0;
  /// Default: mean.
  Aggregate aggregate = Aggregate::mean;
  /// The fitted aggregator for "learned"; null before it exists.
  std::shared_ptr<const PhotoAggregator> aggregator;
  /// Default: none.
  Tta tta = Tta::none;
  /// Patches with a smaller tissue fraction stay out of the aggregate (all count when
  /// none reaches it). From [data.patches] min_tissue.
  double min_tissue = 0.0;
  /// Patches per call of the callable.
  int64_t batch_size = 64;
};

/// Reads [eval] tta and [eval.patches] stride, aggregate for patches of `patch_size`
/// (0: whole photos, where the patch keys are errors), recording problems in the tables.
PhotoPredictionSettings read_photo_prediction_settings(sdk::ParamTable& eval, sdk::ParamTable& eval_patches,
                                                       int64_t patch_size, double min_tissue);
PhotoPredictionSettings read_photo_prediction_settings(Config& config, int64_t patch_size, double min_tissue);

/// Class probabilities (B, K) float of a batch of patches (B, 3, h, w), uint8 or float.
using PatchProbabilities = std::function<torch::Tensor(const torch::Tensor& patches)>;

/// Start offsets along one side of `length` pixels: 0, stride, 2*stride, ... and
/// length - size last, so the patches reach the far edge. Throws Error if size > length.
std::vector<int64_t> grid_starts(int64_t length, int64_t size, int64_t stride);

/// Top-left corners (y, x) of the grid over a height x width photo, row by row, (P, 2) int64.
torch::Tensor grid_positions(int64_t height, int64_t width, int64_t size, int64_t stride);

/// The transforms of `tta` (none: 1, flips: 4, d4: 8).
int64_t tta_count(Tta tta);
/// Transform `k` (0-based) of `tta` applied to a batch (N, C, H, W).
torch::Tensor tta_transform(const torch::Tensor& batch, Tta tta, int64_t k);
/// Mean over the transforms of `tta` of `model`'s probabilities of the transformed batch.
torch::Tensor tta_probabilities(const torch::Tensor& batch, const PatchProbabilities& model, Tta tta);

/// The share of a photo's patches (P, K) whose most probable class is each class (K).
torch::Tensor vote_shares(const torch::Tensor& probabilities);

/// One photo's probabilities (K) from its patches' (P, K) under a fixed rule: mean, vote or
/// max (learned: the mean).
torch::Tensor aggregate_patches(const torch::Tensor& patch_probabilities, Aggregate aggregate);

/// One photo's probabilities (K) from its counted patches' (P, K) under settings.aggregate:
/// a fixed rule, or the learned aggregator (the mean while there is none).
torch::Tensor photo_probabilities(const torch::Tensor& patch_probabilities, const PhotoPredictionSettings& settings);

/// One photo's patches, for heatmaps.
struct PhotoPatches {
  /// Top-left corners (y, x), (P, 2) int64, in pixels of the image predicted.
  torch::Tensor positions;
  /// After TTA, (P, K) float.
  torch::Tensor probabilities;
  /// (P) bool: entered the aggregate (had min_tissue).
  torch::Tensor counted;
};

/// The patches that had min_tissue, all of them when none had: what enters the aggregate.
torch::Tensor counted_probabilities(const PhotoPatches& patches);

struct PhotoPredictions {
  /// (N, K) float: one row per photo.
  torch::Tensor probabilities;
  /// (N, F) float: each photo's photo_features(), with aggregate = "learned" (else undefined).
  torch::Tensor features;
  /// Mean negative log of each photo's probability of its label (clamped at 1e-7); NaN
  /// without labels.
  double loss = std::numeric_limits<double>::quiet_NaN();
  /// Counted patches whose most probable class is their photo's label, and how many
  /// patches were counted: patch-level accuracy, reported beside the photo-level one.
  int64_t patch_correct = 0;
  int64_t patch_total = 0;
  /// Per photo, when predict_photos was asked to keep them.
  std::vector<PhotoPatches> patches;

  /// patch_correct / patch_total, NaN if no patch was counted or there were no labels.
  double patch_accuracy() const;
};

/// Predicts every photo of `images` (N, 3, H, W), uint8 or float [0,1] (any H and W at
/// least patch_size). `labels` (N) int64 may be undefined (then loss and patch accuracy
/// are NaN).
PhotoPredictions predict_photos(const torch::Tensor& images, const torch::Tensor& labels,
                                const PatchProbabilities& model, const PhotoPredictionSettings& settings,
                                bool keep_patches = false);

}  // namespace bachlab::host
