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
std::string shape_text(const torch::Tensor& tensor);

/// Throws bachlab::Error naming augmentation `plugin` unless `batch` is a defined
/// floating-point tensor of shape (N, C, H, W) with, if `channels` > 0, that many channels.
void check_batch(const torch::Tensor& batch, const std::string& plugin, int64_t channels = 0);

/// Throws bachlab::Error naming augmentation `plugin` if `batch` has values outside
/// [0, 1] (with a slack of 1e-3 for rounding). Colour operations need unit-range RGB: a
/// standardised batch would be clamped or its logarithm taken, silently producing garbage.
void check_unit_range(const torch::Tensor& batch, const std::string& plugin);

/// Numbers drawn from U(low, high) with the given shape, returned with `like`'s dtype and
/// device. They are drawn as float32 on the generator's device and then moved, so a seed
/// gives the same draws whatever the batch's dtype or device.
torch::Tensor uniform(torch::Generator& generator, torch::IntArrayRef shape, double low, double high,
                             const torch::Tensor& like);

}  // namespace bachlab::sdk
