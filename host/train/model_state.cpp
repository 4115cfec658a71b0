#include "host/train/model_state.h"

#include <unordered_set>

namespace bachlab::host {

NamedTensors named_state(torch::nn::Module& module) {
  NamedTensors out;
  for (const auto& item : module.named_parameters()) out.emplace_back(item.key(), item.value());
  for (const auto& item : module.named_buffers()) out.emplace_back(item.key(), item.value());
  return out;
}

std::string frozen_weights_identity(sdk::Network& model) {
  const sdk::FrozenFeatures* frozen = model.frozen_features();
  return frozen ? frozen->features_cache_key() : std::string();
}

NamedTensors trained_state(sdk::Network& model) {
  NamedTensors all = named_state(model);
  if (frozen_weights_identity(model).empty()) return all;
  std::unordered_set<const void*> frozen;
  for (const auto& group : model.parameter_groups())
    if (!group.trainable)
      for (const auto& p : group.parameters) frozen.insert(p.unsafeGetTensorImpl());
  NamedTensors out;
  for (auto& [name, tensor] : all)
    if (!frozen.count(tensor.unsafeGetTensorImpl())) out.emplace_back(name, tensor);
  return out;
}

NamedTensors clone_state(const NamedTensors& tensors) {
  NamedTensors out;
  out.reserve(tensors.size());
  for (const auto& [name, tensor] : tensors) out.emplace_back(name, tensor.detach().clone());
  return out;
}

bool all_finite(const torch::Tensor& tensor) {
  return !tensor.is_floating_point() || torch::isfinite(tensor).all().item<bool>();
}

std::string first_non_finite(const NamedTensors& tensors) {
  for (const auto& [name, tensor] : tensors)
    if (!all_finite(tensor.detach())) return name;
  return "";
}

}  // namespace bachlab::host
