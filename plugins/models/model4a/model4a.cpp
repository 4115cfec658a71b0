// Model 4A of the study: Model 2's architecture (three 5x5 stride-2 convolutions, each
// followed by a 2x2 max-pooling; two dense hidden layers; the class logits) with dropout
// after the second dense layer, trained with Model 3C's lower learning rate (a config
// setting). The study's best handcrafted model and the base of its 100-trial tuning run,
// which searched filters 32..256, kernel_size 3/5/11, strides 1/2, padding same/valid,
// hidden_units 64..512 and activation relu/sigmoid: all params here.
//
// The study gives no filter counts, unit counts, padding or dropout rates; our choices,
// each a param:
// - filters 32, 64, 128, hidden_units 128, 128, activation "relu": as Model 2.
// - padding and pool_padding "same" (Keras' default is "valid"): with "valid", three
//   stride-2 5x5 convolutions and three poolings leave nothing of a 32x32 input.
// - dropout 0.5 after the second dense layer: Keras' examples' usual rate.
// Weights start as Keras' do (Glorot-uniform kernels, zero biases) so that results are
// comparable with the study's.
#include <bachlab/sdk/layers.h>
#include <bachlab/sdk/model.h>

#include <memory>
#include <vector>

namespace {

namespace sdk = bachlab::sdk;

/// Model 4A's settings, as read from its [model] table.
struct Model4aOptions {
  /// Filters of each of the three convolutions; one integer sets all. Default: 32, 64, 128
  TORCH_ARG(std::vector<int64_t>, filters) = {32, 64, 128};
  /// Side of the square convolution kernels. Default: 5
  TORCH_ARG(int64_t, kernel_size) = 5;
  /// Stride of the convolutions. Default: 2
  TORCH_ARG(int64_t, strides) = 2;
  /// Convolution padding, "same" or "valid" (as Keras). Default: "same"
  TORCH_ARG(sdk::Padding, padding) = sdk::Padding::same;
  /// Side and stride of the max-pooling windows. Default: 2
  TORCH_ARG(int64_t, pool_size) = 2;
  /// Pooling padding, "same" or "valid". Default: "same"
  TORCH_ARG(sdk::Padding, pool_padding) = sdk::Padding::same;
  /// Units of each of the two dense hidden layers; one integer sets both. Default: 128, 128
  TORCH_ARG(std::vector<int64_t>, hidden_units) = {128, 128};
  /// Activation after every convolution and hidden layer. Default: "relu"
  TORCH_ARG(sdk::Activation, activation) = sdk::Activation::relu;
  /// Dropout rate after the second dense layer (0 removes it). Default: 0.5
  TORCH_ARG(double, dropout) = 0.5;
};

Model4aOptions read_options(sdk::Params& params) {
  Model4aOptions o;
  o.filters(sdk::read_per_layer(params, "filters", o.filters(), {1, 4096}, "convolution"));
  o.kernel_size(params.get_int("kernel_size", o.kernel_size(), {1, 64}));
  o.strides(params.get_int("strides", o.strides(), {1, 64}));
  o.padding(sdk::read_padding(params, "padding", o.padding()));
  o.pool_size(params.get_int("pool_size", o.pool_size(), {1, 64}));
  o.pool_padding(sdk::read_padding(params, "pool_padding", o.pool_padding()));
  o.hidden_units(sdk::read_per_layer(params, "hidden_units", o.hidden_units(), {1, 65536}, "dense hidden layer"));
  o.activation(sdk::read_activation(params, "activation", o.activation()));
  o.dropout(params.get_float("dropout", o.dropout(), {0.0, 0.99}));
  return o;
}

sdk::ConvNetArchitecture architecture(const Model4aOptions& o) {
  sdk::ConvNetArchitecture arch;
  arch.blocks = sdk::single_conv_blocks(o.filters(), o.kernel_size(), o.strides(), o.padding(), o.pool_size(),
                                        o.pool_padding());
  arch.hidden_units = o.hidden_units();
  arch.activation = o.activation();
  arch.dropout = {0.0, o.dropout()};
  return arch;
}

class Model4aPlugin : public sdk::ModelPlugin {
 public:
  std::shared_ptr<sdk::Network> create(const sdk::ModelSpec& spec, sdk::Params& params) const override {
    return sdk::build_conv_net(architecture(read_options(params)), spec, params, "model4a");
  }
};

}  // namespace

BACHLAB_PLUGIN(model, "model4a", "1.0.0",
               "Model 4A: Model 2 with dropout after the second dense layer", Model4aPlugin)
