#pragma once
/// \file optimizer.h
/// Optimizer plugins build a torch::optim::Optimizer over the trainable parameter groups.

#include <bachlab/sdk/params.h>
#include <bachlab/sdk/plugin.h>

#include <torch/torch.h>

#include <memory>
#include <vector>

namespace bachlab::sdk {

/// The interface an optimizer plugin's factory implements.
class OptimizerPlugin {
 public:
  virtual ~OptimizerPlugin() = default;
  /// Builds the optimizer with one torch param group per entry of `groups`, in order,
  /// each with the options read from `params`. The host then scales each group's
  /// learning rate by its ParameterGroup::lr_scale through OptimizerOptions::set_lr.
  virtual std::unique_ptr<torch::optim::Optimizer> create(
      const std::vector<std::vector<torch::Tensor>>& groups, Params& params) const = 0;
};

/// Builds a LibTorch optimizer of type `OptimizerT` with one param group per entry of
/// `groups`, each with a copy of `options`: what most optimizer plugins need.
template <typename OptimizerT, typename OptionsT>
std::unique_ptr<torch::optim::Optimizer> make_optimizer(
    const std::vector<std::vector<torch::Tensor>>& groups, const OptionsT& options) {
  std::vector<torch::optim::OptimizerParamGroup> param_groups;
  for (const auto& tensors : groups)
    param_groups.emplace_back(tensors, std::make_unique<OptionsT>(options));
  return std::make_unique<OptimizerT>(std::move(param_groups), options);
}

template <>
struct KindInterface<kind_tags::optimizer> {
  using type = OptimizerPlugin;
};

}  // namespace bachlab::sdk
