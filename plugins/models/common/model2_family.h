#pragma once
// Model 2 of the study and the four models made from it: three 5x5 convolutions with
// stride 2, each followed by a 2x2 max-pooling, then two dense hidden layers, then the
// class logits. 3A adds convolutions to the last block, 3B doubles the filters, 4A and 4B
// add dropout: each plugin reads and builds only its difference.
//
// The study gives no filter counts, unit counts or padding; our choices, each a param:
// - filters 32, 64, 128: doubling per block, as Keras' own CNN examples do.
// - hidden_units 128, 128: "more units" than the baseline's 64.
// - padding and pool_padding "same" (Keras' default is "valid"): with "valid", three
//   stride-2 5x5 convolutions and three poolings leave nothing of a 32x32 input, and at
//   224x224 they leave 2x2 instead of 4x4.
// - activation "relu" after every convolution and dense layer.
// Weights start as Keras' do (Glorot-uniform kernels, zero biases) so that results are
// comparable with the study's.
#include <bachlab/plugins/layers.h>

#include <cstdint>
#include <vector>

namespace bachlab::plugins {

/// Model 2's settings, as read from its [model] table (and 4A's and 4B's).
struct Model2Options {
  /// Filters of each of the three convolutions; one integer sets all. Default: 32, 64, 128
  TORCH_ARG(std::vector<int64_t>, filters) = {32, 64, 128};
  /// Side of the square convolution kernels. Default: 5
  TORCH_ARG(int64_t, kernel_size) = 5;
  /// Stride of the convolutions. Default: 2
  TORCH_ARG(int64_t, strides) = 2;
  /// Convolution padding, "same" or "valid" (as Keras). Default: "same"
  TORCH_ARG(plugins::Padding, padding) = plugins::Padding::same;
  /// Side and stride of the max-pooling windows. Default: 2
  TORCH_ARG(int64_t, pool_size) = 2;
  /// Pooling padding, "same" or "valid". Default: "same"
  TORCH_ARG(plugins::Padding, pool_padding) = plugins::Padding::same;
  /// Units of each of the two dense hidden layers; one integer sets both. Default: 128, 128
  TORCH_ARG(std::vector<int64_t>, hidden_units) = {128, 128};
  /// Activation after every convolution and hidden layer. Default: "relu"
  TORCH_ARG(plugins::Activation, activation) = plugins::Activation::relu;
};

/// Reads Model 2's keys with `defaults` as their defaults, recording every problem in
/// `params`.
Model2Options read_model2_options(sdk::Params& params, const Model2Options& defaults = {});

/// Model 2's layers, without dropout.
plugins::ConvNetArchitecture model2_architecture(const Model2Options& o);

}  // namespace bachlab::plugins
