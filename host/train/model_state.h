#pragma once
// A model's tensors by name, and which of them a checkpoint stores.

#include <bachlab/sdk/model.h>

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace bachlab::host {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

/// Every parameter, then every buffer, by dotted name (the order Module::save writes them).
NamedTensors named_state(torch::nn::Module& module);

/// For a model with a frozen backbone: what identifies the weights it was built from (its
/// sdk::FrozenFeatures::features_cache_key(), which holds the weights file's path, size and content hash).
/// "" for any other model.
std::string frozen_weights_identity(sdk::Network& model);

/// What training can change, which is what checkpoints and the best epoch's copy keep:
/// named_state() without the parameters of frozen groups when the model has a frozen
/// backbone (those come from the weights file frozen_weights_identity() names; its
/// buffers, a few kilobytes, stay in), and all of named_state() otherwise.
NamedTensors trained_state(sdk::Network& model);

/// Deep copies of `tensors`, detached.
NamedTensors clone_state(const NamedTensors& tensors);

/// True if a floating tensor holds only finite values (other tensors always do).
bool all_finite(const torch::Tensor& tensor);

/// The name of the first of `tensors` holding a NaN or an infinity; "" if none does.
std::string first_non_finite(const NamedTensors& tensors);

}  // namespace bachlab::host
