#pragma once
/// \file optimizer.h
/// Optimizer plugins build a torch::optim::Optimizer over the trainable parameter groups.

#include <bachlab/sdk/model.h>
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
  /// Builds the optimizer with one torch param group per entry of `groups` (the model's
  /// trainable groups), in order, each with the options read from `params` and a
  /// learning rate of lr * the group's lr_scale. The optimizer is the one owner of each
  /// group's learning rate: the host's schedule starts from the rates it was built with.
  virtual std::shared_ptr<torch::optim::Optimizer> create(const std::vector<ParameterGroup>& groups,
                                                          Params& params) const = 0;
};

/// Builds a LibTorch optimizer of type `OptimizerT` with one param group per entry of
/// `groups`, each with a copy of `options` whose lr is scaled by the group's lr_scale:
/// what most optimizer plugins need.
template <typename OptimizerT, typename OptionsT>
std::shared_ptr<torch::optim::Optimizer> make_optimizer(const std::vector<ParameterGroup>& groups,
                                                        const OptionsT& options) {
  std::vector<torch::optim::OptimizerParamGroup> param_groups;
  for (const auto& group : groups) {
    auto group_options = std::make_unique<OptionsT>(options);
    group_options->set_lr(options.get_lr() * group.lr_scale);
    param_groups.emplace_back(group.parameters, std::move(group_options));
  }
  return std::make_shared<OptimizerT>(std::move(param_groups), options);
}

template <>
struct KindInterface<kind_tags::optimizer> {
  using type = OptimizerPlugin;
};

}  // namespace bachlab::sdk
