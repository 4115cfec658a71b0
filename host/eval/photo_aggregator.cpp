#include "host/eval/photo_aggregator.h"

#include "host/eval/photo_prediction.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <set>

namespace bachlab::host {

namespace {

torch::Tensor to_tensor(const nlohmann::json& json, const char* key, const std::filesystem::path& origin) {
  if (!json.contains(key) || !json.at(key).is_array())
    throw Error(fmt::format("{}: \"{}\" must be a list of numbers (a learned photo aggregator)", origin.string(), key));
  const nlohmann::json& value = json.at(key);
  if (!value.empty() && value.front().is_array()) {
    std::vector<torch::Tensor> rows;
    for (const auto& row : value) rows.push_back(torch::tensor(row.get<std::vector<double>>(), torch::kFloat64));
    return torch::stack(rows);
  }
  return torch::tensor(value.get<std::vector<double>>(), torch::kFloat64);
}

std::vector<double> to_list(const torch::Tensor& t) {
  const torch::Tensor c = t.to(torch::kFloat64).contiguous();
  return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
}

}  // namespace

torch::Tensor photo_features(const torch::Tensor& patch_probabilities) {
  const torch::Tensor p = patch_probabilities.to(torch::kFloat32);
  const torch::Tensor quartiles = torch::quantile(p, torch::tensor({0.25f, 0.5f, 0.75f}), 0);  // (3, K)
  return torch::cat({p.mean(0), quartiles.reshape(-1), std::get<0>(p.max(0)), vote_shares(p)});
}

PhotoAggregator PhotoAggregator::fit(const torch::Tensor& features, const torch::Tensor& labels, int64_t classes) {
  if (features.dim() != 2 || labels.dim() != 1 || features.size(0) != labels.size(0))
    throw Error(fmt::format("the photo aggregator needs one label per row of features (got {} rows, {} labels)",
                            features.dim() > 0 ? features.size(0) : 0, labels.numel()));
  if (features.size(0) < 2) throw Error("the photo aggregator needs at least two photos to learn from");
  const torch::Tensor x = features.to(torch::kFloat64);
  if (!torch::isfinite(x).all().item<bool>())
    throw Error("the photo aggregator's features are not all finite (the patch model's outputs diverged)");
  PhotoAggregator a;
  a.mean_ = x.mean(0);
  // A feature every photo shares (a class no patch ever votes for) is left unscaled.
  const torch::Tensor sd = x.std(0, /*unbiased=*/false);
  a.scale_ = torch::where(sd > 1e-9, sd, torch::ones_like(sd));
  const torch::Tensor z = (x - a.mean_) / a.scale_;
  const torch::Tensor y = labels.to(torch::kLong);

  torch::Tensor weight = torch::zeros({classes, x.size(1)}, torch::kFloat64).requires_grad_();
  torch::Tensor bias = torch::zeros({classes}, torch::kFloat64).requires_grad_();
  // A smooth, strictly convex objective: L-BFGS with a strong-Wolfe line search finds its
  // minimum in a few dozen iterations, the same one on every run (no randomness).
  torch::optim::LBFGS solver({weight, bias}, torch::optim::LBFGSOptions(1.0)
                                                 .max_iter(500)
                                                 .tolerance_grad(1e-10)
                                                 .tolerance_change(1e-14)
                                                 .history_size(20)
                                                 .line_search_fn("strong_wolfe"));
  auto objective = [&] {
    solver.zero_grad();
    torch::Tensor loss = torch::nn::functional::cross_entropy(torch::nn::functional::linear(z, weight, bias), y) +
                         0.5 * kL2 * weight.pow(2).sum();
    loss.backward();
    return loss;
  };
  solver.step(objective);
  a.weight_ = weight.detach().clone();
  a.bias_ = bias.detach().clone();
  return a;
}

torch::Tensor PhotoAggregator::probabilities(const torch::Tensor& features) const {
  if (!weight_.defined()) throw Error("the photo aggregator has not been fitted");
  const torch::Tensor x = features.dim() == 1 ? features.unsqueeze(0) : features;
  if (x.size(1) != feature_count())
    throw Error(fmt::format("the photo aggregator was fitted on {} features per photo but was given {}",
                            feature_count(), x.size(1)));
  const torch::Tensor z = (x.to(torch::kFloat64) - mean_) / scale_;
  return torch::softmax(torch::nn::functional::linear(z, weight_, bias_), 1).to(torch::kFloat32);
}

nlohmann::json PhotoAggregator::to_json() const {
  std::vector<std::vector<double>> weight;
  for (int64_t k = 0; k < weight_.size(0); ++k) weight.push_back(to_list(weight_[k]));
  return {{"kind", "multinomial logistic regression on standardised photo features"},
          {"features_per_class", kPhotoFeaturesPerClass},
          {"l2", kL2},
          {"feature_mean", to_list(mean_)},
          {"feature_scale", to_list(scale_)},
          {"weight", weight},
          {"bias", to_list(bias_)}};
}

PhotoAggregator PhotoAggregator::from_json(const nlohmann::json& json, const std::filesystem::path& origin) {
  if (!json.is_object()) throw Error(origin.string() + ": expected a JSON object (a learned photo aggregator)");
  PhotoAggregator a;
  try {
    a.mean_ = to_tensor(json, "feature_mean", origin);
    a.scale_ = to_tensor(json, "feature_scale", origin);
    a.weight_ = to_tensor(json, "weight", origin);
    a.bias_ = to_tensor(json, "bias", origin);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: not a learned photo aggregator ({})", origin.string(), e.what()));
  }
  const int64_t f = a.mean_.numel(), k = a.bias_.numel();
  if (f == 0 || k == 0 || a.scale_.numel() != f || a.weight_.dim() != 2 || a.weight_.size(0) != k ||
      a.weight_.size(1) != f || f != kPhotoFeaturesPerClass * k)
    throw Error(fmt::format("{}: the aggregator's sizes do not fit together (feature_mean {}, feature_scale {}, "
                            "weight {}, bias {}; {} features per class)",
                            origin.string(), f, a.scale_.numel(), a.weight_.numel(), k, kPhotoFeaturesPerClass));
  if (!torch::isfinite(a.weight_).all().item<bool>() || !(a.scale_ > 0).all().item<bool>())
    throw Error(origin.string() + ": the aggregator's weights are not finite or a feature scale is not positive");
  return a;
}

torch::Tensor cross_fitted_probabilities(const torch::Tensor& features, const torch::Tensor& labels,
                                         const std::vector<int>& groups, int64_t classes) {
  if (static_cast<int64_t>(groups.size()) != features.size(0))
    throw Error(fmt::format("{} fold numbers for {} photos", groups.size(), features.size(0)));
  torch::Tensor out = torch::empty({features.size(0), classes}, torch::kFloat32);
  for (int group : std::set<int>(groups.begin(), groups.end())) {
    std::vector<int64_t> inside, outside;
    for (size_t i = 0; i < groups.size(); ++i) (groups[i] == group ? inside : outside).push_back(int64_t(i));
    if (outside.empty()) throw Error("learned aggregation needs at least two folds");
    const torch::Tensor in = torch::tensor(inside, torch::kLong), off = torch::tensor(outside, torch::kLong);
    const PhotoAggregator a = PhotoAggregator::fit(features.index_select(0, off), labels.index_select(0, off), classes);
    out.index_copy_(0, in, a.probabilities(features.index_select(0, in)));
  }
  return out;
}

}  // namespace bachlab::host
