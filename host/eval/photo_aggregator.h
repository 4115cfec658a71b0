#pragma once
// Learned photo-level aggregation ([eval.patches] aggregate = "learned"): instead of a fixed
// rule (the mean of the grid's patch probabilities), a small classifier reads a photo's
// whole distribution of patch probabilities - per class the mean, the quartiles, the
// largest value and the share of patches voting for it - and gives the photo's class
// probabilities. A photo of InSitu carcinoma is mostly normal-looking tissue around a few
// ducts: the upper quantiles see those few patches, which the mean dilutes.
//
// The classifier is a multinomial logistic regression on standardised features with an L2
// penalty (Rakhlin et al. 2018 used gradient boosting on similar features; with 100-400
// photos a linear model has far fewer ways to overfit). It can only be fitted on patch
// probabilities of photos the patch model never trained on, so it is fitted across a
// cross-validation's folds: each fold's photos are predicted by an aggregator fitted on the
// other folds' out-of-fold predictions (cross_fitted_probabilities), and the one fitted on
// all folds serves `bachlab predict`.

#include <nlohmann/json_fwd.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <vector>

namespace bachlab::host {

/// Features per class of a photo's aggregator input.
inline constexpr int64_t kPhotoFeaturesPerClass = 6;

/// One photo's features (kPhotoFeaturesPerClass * K) from its counted patches' probabilities
/// (P, K), float: for each class the mean, lower quartile, median, upper quartile and
/// maximum probability, then the share of patches whose most probable class it is.
torch::Tensor photo_features(const torch::Tensor& patch_probabilities);

class PhotoAggregator {
 public:
  /// L2 penalty on the weights (of standardised features), per photo: the objective is the
  /// mean cross-entropy plus kL2 / 2 times the squared weights.
  static constexpr double kL2 = 0.03;

  /// Fits on `features` (N, F) with `labels` (N) int64 in [0, classes); deterministic.
  /// Throws Error for fewer than two photos, mismatched sizes or non-finite features.
  static PhotoAggregator fit(const torch::Tensor& features, const torch::Tensor& labels, int64_t classes);

  /// Class probabilities (N, K) float of photos' features (N, F).
  torch::Tensor probabilities(const torch::Tensor& features) const;

  int64_t classes() const { return bias_.defined() ? bias_.size(0) : 0; }
  int64_t feature_count() const { return mean_.defined() ? mean_.size(0) : 0; }

  nlohmann::json to_json() const;
  /// Throws Error naming `origin` when the JSON is not an aggregator.
  static PhotoAggregator from_json(const nlohmann::json& json, const std::filesystem::path& origin);

 private:
  torch::Tensor mean_, scale_;  // (F) float64: feature standardisation from the fitted photos
  torch::Tensor weight_;        // (K, F) float64
  torch::Tensor bias_;          // (K) float64
};

/// Row i of `features` (N, F) predicted by an aggregator fitted on the rows of every other
/// group (`groups[i]`: a fold number): the out-of-fold photo probabilities (N, K) float of
/// a cross-validation, none of them from an aggregator that saw its photo's label.
torch::Tensor cross_fitted_probabilities(const torch::Tensor& features, const torch::Tensor& labels,
                                         const std::vector<int>& groups, int64_t classes);

}  // namespace bachlab::host
