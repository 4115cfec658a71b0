#pragma once
/// \file batch_ops.h
/// Helpers for augmentations, which work on a whole batch (N, C, H, W) at once: checks that
/// refuse a batch an augmentation cannot handle with a message naming the plugin, what was
/// expected and what was found, and random draws that depend only on the host's generator.

#include <bachlab/sdk/error.h>

#include <torch/torch.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace bachlab::sdk {

/// A tensor's shape as "(2, 3, 32, 32)", for messages.
inline std::string shape_text(const torch::Tensor& tensor) {
  std::string text;
  for (int64_t d : tensor.sizes()) text += (text.empty() ? "" : ", ") + std::to_string(d);
  return "(" + text + ")";
}

/// Throws bachlab::Error naming augmentation `plugin` unless `batch` is a defined
/// floating-point tensor of shape (N, C, H, W) with, if `channels` > 0, that many channels.
inline void check_batch(const torch::Tensor& batch, const std::string& plugin, int64_t channels = 0) {
  if (!batch.defined() || batch.dim() != 4 || !batch.is_floating_point())
    throw Error("augmentation \"" + plugin + "\": expected a floating-point batch of shape (N, C, H, W), found " +
                (batch.defined() ? std::string(batch.is_floating_point() ? "a float" : "an integer") +
                                       " tensor of shape " + shape_text(batch)
                                 : std::string("an undefined tensor")) +
                "; augmentations run on decoded image batches, before the model");
  if (channels > 0 && batch.size(1) != channels)
    throw Error("augmentation \"" + plugin + "\": expected " + std::to_string(channels) +
                " (RGB) channels, found a batch of shape " + shape_text(batch) + "; use it only with colour images");
}

/// Throws bachlab::Error naming augmentation `plugin` if `batch` has values outside
/// [0, 1] (with a slack of 1e-3 for rounding). Colour operations need unit-range RGB: a
/// standardised batch would be clamped or its logarithm taken, silently producing garbage.
inline void check_unit_range(const torch::Tensor& batch, const std::string& plugin) {
  constexpr double kSlack = 1e-3;
  if (batch.numel() == 0) return;
  auto extremes = torch::stack({batch.min(), batch.max()}).to(torch::kDouble).cpu();
  double low = extremes[0].item<double>(), high = extremes[1].item<double>();
  if (low < -kSlack || high > 1 + kSlack) {
    char range[64];
    std::snprintf(range, sizeof range, "[%.3g, %.3g]", low, high);
    throw Error("augmentation \"" + plugin + "\": expected pixel values in [0, 1], found values in " + range +
                "; it works on unit-range RGB images, so standardise after augmenting, not before");
  }
}

/// Numbers drawn from U(low, high) with the given shape, returned with `like`'s dtype and
/// device. They are drawn as float32 on the generator's device and then moved, so a seed
/// gives the same draws whatever the batch's dtype or device.
inline torch::Tensor uniform(torch::Generator& generator, torch::IntArrayRef shape, double low, double high,
                             const torch::Tensor& like) {
  auto u = torch::rand(shape, generator, torch::TensorOptions().dtype(torch::kFloat).device(generator.device()));
  return (u * (high - low) + low).to(like.options());
}

}  // namespace bachlab::sdk
