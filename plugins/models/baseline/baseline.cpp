// The study's baseline: one 3x3 convolution, one max-pooling, one dense hidden layer, the
// class logits. It scored ~25% (chance) in the study, with and without augmentation.
//
// The study gives no filter or unit counts; our choices, each a param, are Keras'
// defaults and its examples' usual sizes:
// - filters 32, kernel_size 3, strides 1, padding "valid" (Keras' default).
// - pool_size 2; pool_padding "same" like the other handcrafted models (for even sizes,
//   such as 222 at a 224x224 input, "same" and "valid" give the same 111).
// - hidden_units 64, activation "relu".
// At 224x224 the dense layer sees 111x111x32 features: 25.2 million of the 25.2 million
// parameters are in it, which is the study's architecture, not an accident.
// Weights start as Keras' do (Glorot-uniform kernels, zero biases) so that results are
// comparable with the study's.
#include <bachlab/plugins/layers.h>
#include <bachlab/sdk/model.h>

#include <memory>

namespace {

namespace sdk = bachlab::sdk;
namespace plugins = bachlab::plugins;

/// The baseline's settings, as read from its [model] table.
struct BaselineOptions {
  /// Filters of the convolution. Default: 32
  TORCH_ARG(int64_t, filters) = 32;
  /// Side of the square convolution kernel. Default: 3
  TORCH_ARG(int64_t, kernel_size) = 3;
  /// Stride of the convolution. Default: 1
  TORCH_ARG(int64_t, strides) = 1;
  /// Convolution padding, "same" or "valid" (as Keras). Default: "valid"
  TORCH_ARG(plugins::Padding, padding) = plugins::Padding::valid;
  /// Side and stride of the max-pooling window. Default: 2
  TORCH_ARG(int64_t, pool_size) = 2;
  /// Pooling padding, "same" or "valid". Default: "same"
  TORCH_ARG(plugins::Padding, pool_padding) = plugins::Padding::same;
  /// Units of the dense hidden layer. Default: 64
  TORCH_ARG(int64_t, hidden_units) = 64;
  /// Activation after the convolution and the hidden layer. Default: "relu"
  TORCH_ARG(plugins::Activation, activation) = plugins::Activation::relu;
};

BaselineOptions read_options(sdk::Params& params) {
  BaselineOptions o;
  o.filters(params.get_int("filters", o.filters(), {1, 4096}));
  o.kernel_size(params.get_int("kernel_size", o.kernel_size(), {1, 64}));
  o.strides(params.get_int("strides", o.strides(), {1, 64}));
  o.padding(plugins::read_padding(params, "padding", o.padding()));
  o.pool_size(params.get_int("pool_size", o.pool_size(), {1, 64}));
  o.pool_padding(plugins::read_padding(params, "pool_padding", o.pool_padding()));
  o.hidden_units(params.get_int("hidden_units", o.hidden_units(), {1, 65536}));
  o.activation(plugins::read_activation(params, "activation", o.activation()));
  return o;
}

plugins::ConvNetArchitecture architecture(const BaselineOptions& o) {
  plugins::ConvNetArchitecture arch;
  arch.blocks = plugins::single_conv_blocks({o.filters()}, o.kernel_size(), o.strides(), o.padding(), o.pool_size(),
                                        o.pool_padding());
  arch.hidden_units = {o.hidden_units()};
  arch.activation = o.activation();
  return arch;
}

class BaselinePlugin : public sdk::ModelPlugin {
 public:
  std::shared_ptr<sdk::Network> create(const sdk::ModelSpec& spec, sdk::Params& params) const override {
    return plugins::build_conv_net(architecture(read_options(params)), spec, params, "baseline");
  }
};

}  // namespace

BACHLAB_PLUGIN(model, "baseline", "1.0.0",
               "Baseline: one 3x3 convolution, one max-pooling, one dense layer of 64", BaselinePlugin)
