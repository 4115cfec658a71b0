#pragma once
/// \file layers.h
/// Building blocks for Keras-style convolutional networks: Keras/TensorFlow output sizes
/// and "same" padding, per-layer settings read from a [model] table, activations by name,
/// Keras' initialisation, and a builder that turns a list of conv blocks and dense layers
/// into a Network after checking that no layer shrinks the input to nothing. Models that
/// reproduce Keras experiments need all of these to match the original shapes, parameter
/// counts and starting weights; the handcrafted models in plugins/models/ use them.
///
/// Not part of the SDK: this is in-tree plugin code (the static library
/// bachlab_model_common, plugins/models/common/), linked into each plugin that uses it, so
/// a field added to its structs changes no plugin ABI.
///
/// Typical use in a plugin's create():
///
///   ConvNetArchitecture arch;
///   arch.blocks = single_conv_blocks(o.filters(), o.kernel_size(), o.strides(), o.padding(),
///                                    o.pool_size(), o.pool_padding());
///   arch.hidden_units = o.hidden_units();
///   return build_conv_net(arch, spec, params, "mymodel");

#include <bachlab/sdk/error.h>
#include <bachlab/sdk/model.h>
#include <bachlab/sdk/params.h>
#include <bachlab/sdk/value.h>

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace bachlab::plugins {

using sdk::ModelSpec;
using sdk::Network;
using sdk::Params;
using sdk::Range;
using sdk::Scalar;
using sdk::Value;
using sdk::to_string;

// ---------------------------------------------------------------------------------------
// Sizes and padding
// ---------------------------------------------------------------------------------------

/// Keras' padding modes: "valid" uses only whole windows, "same" pads so that the output
/// is ceil(input / stride).
enum class Padding { valid, same };

/// The names a config uses for Padding, in the order error messages list them.
const std::vector<std::string>& padding_names();

/// The config name of a padding: "same" or "valid".
std::string padding_name(Padding padding);

/// Reads a padding setting ("same" or "valid"); a wrong value is recorded in `params`
/// (naming both choices) and `fallback` returned.
Padding read_padding(Params& params, const std::string& key, Padding fallback);

/// Keras/TensorFlow output size of one spatial dimension for a window of `kernel` moved by
/// `stride`. 0 when a "valid" window does not fit, so that a caller can report the shrink
/// instead of LibTorch failing later.
int64_t keras_output_size(int64_t in, int64_t kernel, int64_t stride, Padding padding);

/// TensorFlow's "same" padding of one dimension as (before, after). TensorFlow puts the odd
/// pixel after (bottom/right); LibTorch's padding="same" does neither that asymmetry nor
/// strides > 1, so a Keras-compatible layer pads explicitly with these amounts.
std::pair<int64_t, int64_t> keras_same_padding(int64_t in, int64_t kernel, int64_t stride);

// ---------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------

/// The spec of a per-layer key, whichever form the config used: the getter records only
/// the form it read (a scalar or a list), and the reference should show both, with the
/// whole per-layer default. The range is the getter's, already recorded.
template <typename T>
void describe_per_layer(Params& params, const std::string& key, const std::vector<T>& fallback) {
  constexpr bool kIntegers = std::is_same_v<T, int64_t>;
  std::vector<Scalar> list(fallback.begin(), fallback.end());
  params.describe(key, kIntegers ? "integer or list of integers" : "number or list of numbers",
                        to_string(Value(std::move(list))));
}

/// Reads a setting with one value per layer: either one value for every layer (what a
/// tuner sets) or a list with exactly `fallback.size()` values. `layer` names a layer in
/// the message for a list of the wrong length, e.g. "convolution" gives "filters must
/// list 3 values, one per convolution (was [32, 64]); give 3 values or one integer for
/// all". Problems are recorded in `params` and `fallback` returned. T is int64_t or double.
template <typename T>
std::vector<T> read_per_layer(Params& params, const std::string& key, const std::vector<T>& fallback,
                              Range<T> range, const std::string& layer) {
  static_assert(std::is_same_v<T, int64_t> || std::is_same_v<T, double>, "read_per_layer takes int64_t or double");
  constexpr bool kIntegers = std::is_same_v<T, int64_t>;
  const std::optional<Value> given = params.has(key) ? params.get_value(key) : std::nullopt;
  if (given && std::holds_alternative<std::vector<Scalar>>(*given)) {
    std::vector<T> values;
    if constexpr (kIntegers) {
      values = params.get_int_list(key, fallback, range);
    } else {
      values = params.get_float_list(key, fallback, range);
    }
    describe_per_layer(params, key, fallback);
    if (values.size() != fallback.size()) {
      const std::string count = std::to_string(fallback.size());
      params.fail(key, "must list " + count + " values, one per " + layer + " (was " + to_string(*given) +
                           "); give " + count + " values or one " + (kIntegers ? "integer" : "number") + " for all");
      return fallback;
    }
    return values;
  }
  T value;
  if constexpr (kIntegers) {
    value = params.get_int(key, fallback.front(), range);
  } else {
    value = params.get_float(key, fallback.front(), range);
  }
  describe_per_layer(params, key, fallback);
  return params.has(key) ? std::vector<T>(fallback.size(), value) : fallback;
}

// ---------------------------------------------------------------------------------------
// Activations and initialisation
// ---------------------------------------------------------------------------------------

/// The activations a Keras-style model offers after its convolutions and dense layers.
enum class Activation { relu, sigmoid, tanh };

/// The names a config uses for Activation, in the order error messages list them.
const std::vector<std::string>& activation_names();

/// The config name of an activation: "relu", "sigmoid" or "tanh".
std::string activation_name(Activation activation);

/// Reads an activation setting; a wrong value is recorded in `params` (naming the
/// choices and the closest one) and `fallback` returned.
Activation read_activation(Params& params, const std::string& key, Activation fallback);

/// A fresh activation module, for a torch::nn::Sequential.
torch::nn::AnyModule make_activation(Activation activation);

/// Re-initialises every Conv2d and Linear below `network` as Keras does (Glorot-uniform
/// kernels, zero biases) instead of LibTorch's Kaiming-uniform, so that training starts as
/// in a Keras experiment. LibTorch's fan of a conv kernel (channels x kernel area) is
/// Keras' too. Draws from the global generator, so torch::manual_seed fixes the weights.
void init_like_keras(torch::nn::Module& network);

// ---------------------------------------------------------------------------------------
// Conv nets: conv blocks, then dense layers, then the class logits
// ---------------------------------------------------------------------------------------

/// One square convolution, followed by the architecture's activation.
struct ConvLayer {
  /// Output channels.
  int64_t filters = 0;
  /// Side of the square kernel.
  int64_t kernel = 0;
  /// Stride in both directions.
  int64_t stride = 1;
  /// Keras padding mode.
  Padding padding = Padding::valid;
  /// The setting that chose `stride`, named in the message when this layer shrinks the
  /// input to nothing (the kernel's setting is always "kernel_size").
  std::string stride_key = "strides";
};

/// Convolutions followed by one max-pooling whose window is `pool` wide with stride
/// `pool` (Keras' default). "same" pooling pads with -inf, so padding never wins.
struct ConvBlock {
  /// The block's convolutions, in order.
  std::vector<ConvLayer> convs;
  /// Side and stride of the pooling window.
  int64_t pool = 2;
  /// Keras padding mode of the pooling.
  Padding pool_padding = Padding::valid;
};

/// Everything needed to build a Keras-style conv net: conv blocks, a flatten, dense hidden
/// layers (each followed by the activation and optional dropout), and a dense layer with
/// one logit per class.
struct ConvNetArchitecture {
  /// The conv blocks, in order.
  std::vector<ConvBlock> blocks;
  /// Units of each dense hidden layer, in order.
  std::vector<int64_t> hidden_units;
  /// Dropout rate after each dense hidden layer (same index); 0 or a missing entry means
  /// no dropout layer there.
  std::vector<double> dropout;
  /// Activation after every convolution and dense hidden layer.
  Activation activation = Activation::relu;
};

/// One block per entry of `filters`, each a single convolution then a pooling: the shape
/// of Keras' classic CNN examples.
std::vector<ConvBlock> single_conv_blocks(const std::vector<int64_t>& filters, int64_t kernel, int64_t stride,
                                                 Padding padding, int64_t pool, Padding pool_padding);


/// Follows a spec.width x spec.height input through every block and records in `params`,
/// against the key responsible ("kernel_size" or "pool_size"), the first layer that leaves
/// less than one pixel, with the sizes and the fixes. Returns false if one did.
bool check_shapes(const ConvNetArchitecture& arch, const ModelSpec& spec, Params& params);

/// The layers of `arch` for inputs of exactly spec's size (the "same" padding depends on
/// it), ending in spec.num_classes logits. Assumes check_shapes() passed. Weights are
/// LibTorch's defaults; see init_like_keras().
torch::nn::Sequential build_conv_layers(const ConvNetArchitecture& arch, const ModelSpec& spec);

/// A Network that is one torch::nn::Sequential, registered as "layers" (so parameters
/// are named "layers.<index>.weight" in checkpoints).
class SequentialNetwork : public Network {
 public:
  /// Takes ownership of `layers`.
  explicit SequentialNetwork(torch::nn::Sequential layers);
  /// Runs the layers in order.
  torch::Tensor forward(torch::Tensor images) override;

 private:
  torch::nn::Sequential layers_;
};

/// Checks and builds `arch` for `spec`, initialised as Keras would. Throws bachlab::Error
/// naming `model` for a spec it cannot take, then for every problem recorded in `params`
/// (read by the plugin before this call), then for a layer that shrinks the input to
/// nothing - in that order, so that a user sees a wrong type before a shape computed from
/// a fallback value.
std::shared_ptr<Network> build_conv_net(const ConvNetArchitecture& arch, const ModelSpec& spec,
                                               Params& params, const std::string& model);

}  // namespace bachlab::plugins
