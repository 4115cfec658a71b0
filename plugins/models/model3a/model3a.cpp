// Model 3A of the study: Model 2 with two more convolutions before the last max-pooling
// (three blocks of a 5x5 stride-2 convolution and a 2x2 max-pooling, the third block with
// three convolutions; two dense hidden layers; the class logits). The study tried it
// because Model 2 underfitted; it fell back to the baseline's accuracy.
//
// The study gives no filter counts, unit counts, padding or the extra layers' strides;
// our choices, each a param:
// - filters 32, 64, 128 (as Model 2); the extra convolutions have extra_filters, by
//   default the third block's 128, and Model 2's kernel_size and padding.
// - extra_strides 1: the study names only "more convolutions"; stride 1 keeps the third
//   block's 7x7 map (at 224x224) instead of shrinking it to 2x2 before the pooling.
// - hidden_units 128, 128, padding and pool_padding "same", activation "relu": as Model 2
//   (with "valid", Model 2's layers already leave nothing of a 32x32 input).
// Weights start as Keras' do (Glorot-uniform kernels, zero biases) so that results are
// comparable with the study's.
#include <bachlab/sdk/layers.h>
#include <bachlab/sdk/model.h>

#include <memory>
#include <vector>

namespace {

namespace sdk = bachlab::sdk;

/// Model 3A's settings, as read from its [model] table.
struct Model3aOptions {
  /// Filters of the three blocks' first convolutions; one integer sets all. Default: 32, 64, 128
  TORCH_ARG(std::vector<int64_t>, filters) = {32, 64, 128};
  /// Convolutions added to the third block, before its pooling. Default: 2
  TORCH_ARG(int64_t, extra_convolutions) = 2;
  /// Filters of the added convolutions. Default: the third block's filters (128)
  TORCH_ARG(int64_t, extra_filters) = 128;
  /// Stride of the added convolutions. Default: 1
  TORCH_ARG(int64_t, extra_strides) = 1;
  /// Side of the square convolution kernels, all convolutions. Default: 5
  TORCH_ARG(int64_t, kernel_size) = 5;
  /// Stride of the three blocks' first convolutions. Default: 2
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
};

Model3aOptions read_options(sdk::Params& params) {
  Model3aOptions o;
  o.filters(sdk::read_per_layer(params, "filters", o.filters(), {1, 4096}, "block"));
  o.extra_convolutions(params.get_int("extra_convolutions", o.extra_convolutions(), {0, 16}));
  o.extra_filters(params.get_int("extra_filters", o.filters().back(), {1, 4096}));
  params.describe("extra_filters", "", "the last filters value");
  o.extra_strides(params.get_int("extra_strides", o.extra_strides(), {1, 64}));
  o.kernel_size(params.get_int("kernel_size", o.kernel_size(), {1, 64}));
  o.strides(params.get_int("strides", o.strides(), {1, 64}));
  o.padding(sdk::read_padding(params, "padding", o.padding()));
  o.pool_size(params.get_int("pool_size", o.pool_size(), {1, 64}));
  o.pool_padding(sdk::read_padding(params, "pool_padding", o.pool_padding()));
  o.hidden_units(sdk::read_per_layer(params, "hidden_units", o.hidden_units(), {1, 65536}, "dense hidden layer"));
  o.activation(sdk::read_activation(params, "activation", o.activation()));
  return o;
}

sdk::ConvNetArchitecture architecture(const Model3aOptions& o) {
  sdk::ConvNetArchitecture arch;
  arch.blocks = sdk::single_conv_blocks(o.filters(), o.kernel_size(), o.strides(), o.padding(), o.pool_size(),
                                        o.pool_padding());
  for (int64_t i = 0; i < o.extra_convolutions(); ++i)
    arch.blocks.back().convs.push_back(
        {o.extra_filters(), o.kernel_size(), o.extra_strides(), o.padding(), "extra_strides"});
  arch.hidden_units = o.hidden_units();
  arch.activation = o.activation();
  return arch;
}

class Model3aPlugin : public sdk::ModelPlugin {
 public:
  std::shared_ptr<sdk::Network> create(const sdk::ModelSpec& spec, sdk::Params& params) const override {
    return sdk::build_conv_net(architecture(read_options(params)), spec, params, "model3a");
  }
};

}  // namespace

BACHLAB_PLUGIN(model, "model3a", "1.0.0",
               "Model 3A: Model 2 with two more 5x5 convolutions before the last max-pooling", Model3aPlugin)
