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
#include <bachlab/sdk/model.h>

#include <algorithm>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace {

// ---------------------------------------------------------------------------------------
// The conv-stack machinery every handcrafted model plugin repeats, because plugins share
// code only through the SDK. It is proposed for the SDK as <bachlab/sdk/layers.h>; keep
// the copies in plugins/models/*/ identical until then.
// ---------------------------------------------------------------------------------------

using bachlab::sdk::ModelSpec;
using bachlab::sdk::Params;
using bachlab::sdk::Range;

const std::vector<std::string> kActivations = {"relu", "sigmoid", "tanh"};
const std::vector<std::string> kPaddings = {"same", "valid"};

/// One convolution; `stride_key` is the param that set its stride, for messages.
struct ConvLayer {
  int64_t filters = 0;
  int64_t kernel = 0;
  int64_t stride = 1;
  bool same = false;
  std::string stride_key = "strides";
};

/// Convolutions followed by one max-pooling (pool size = pool stride, as Keras' default).
struct ConvBlock {
  std::vector<ConvLayer> convs;
  int64_t pool = 2;
  bool pool_same = false;
};

/// Everything needed to build one handcrafted network.
struct Architecture {
  std::vector<ConvBlock> blocks;
  std::vector<int64_t> hidden_units;
  /// Dropout rate after each dense hidden layer; 0 means no dropout layer.
  std::vector<double> dropout;
  std::string activation = "relu";
};

// Keras/TensorFlow output size of one spatial dimension; 0 when a "valid" window does
// not fit, so the caller can report the shrink instead of LibTorch failing later.
int64_t keras_output_size(int64_t in, int64_t kernel, int64_t stride, bool same) {
  if (same) return (in + stride - 1) / stride;
  return in < kernel ? 0 : (in - kernel) / stride + 1;
}

// TensorFlow's "same" padding puts the odd pixel after (bottom/right); LibTorch's
// padding="same" does neither strides > 1 nor that asymmetry, so it is done explicitly.
std::pair<int64_t, int64_t> keras_same_padding(int64_t in, int64_t kernel, int64_t stride) {
  int64_t out = (in + stride - 1) / stride;
  int64_t total = std::max<int64_t>((out - 1) * stride + kernel - in, 0);
  return {total / 2, total - total / 2};
}

std::string size_text(int64_t width, int64_t height) {
  return std::to_string(width) + "x" + std::to_string(height);
}

// An integer for every layer, or a list with one value per layer (the tuner sets one
// integer; a config may tune layers separately).
[[maybe_unused]] std::vector<int64_t> read_per_layer(Params& params, const std::string& key, const std::vector<int64_t>& fallback,
                                    Range<int64_t> range, const std::string& layer) {
  if (params.has(key) && std::holds_alternative<std::vector<bachlab::sdk::Scalar>>(params.raw(key))) {
    auto values = params.get_int_list(key, fallback, range);
    if (values.size() != fallback.size()) {
      params.fail(key, "must list " + std::to_string(fallback.size()) + " values, one per " + layer + " (was " +
                           bachlab::sdk::to_string(params.raw(key)) + "); give " + std::to_string(fallback.size()) +
                           " values or one integer for all");
      return fallback;
    }
    return values;
  }
  int64_t value = params.get_int(key, fallback.front(), range);
  return params.has(key) ? std::vector<int64_t>(fallback.size(), value) : fallback;
}

[[maybe_unused]] std::vector<double> read_per_layer(Params& params, const std::string& key, const std::vector<double>& fallback,
                                   Range<double> range, const std::string& layer) {
  if (params.has(key) && std::holds_alternative<std::vector<bachlab::sdk::Scalar>>(params.raw(key))) {
    auto values = params.get_float_list(key, fallback, range);
    if (values.size() != fallback.size()) {
      params.fail(key, "must list " + std::to_string(fallback.size()) + " values, one per " + layer + " (was " +
                           bachlab::sdk::to_string(params.raw(key)) + "); give " + std::to_string(fallback.size()) +
                           " values or one number for all");
      return fallback;
    }
    return values;
  }
  double value = params.get_float(key, fallback.front(), range);
  return params.has(key) ? std::vector<double>(fallback.size(), value) : fallback;
}

void check_spec(const ModelSpec& spec, const std::string& model) {
  if (spec.channels < 1 || spec.height < 1 || spec.width < 1 || spec.num_classes < 2)
    throw bachlab::Error("model \"" + model + "\": expected an input of at least 1 channel and 1x1 pixels and at least " +
                         "2 classes, found " + std::to_string(spec.channels) + " channels, " +
                         size_text(spec.width, spec.height) + " pixels and " + std::to_string(spec.num_classes) +
                         " classes; check [data] image_size and the class list");
}

// Follows the image through every block and records, against the key responsible, the
// first layer that leaves less than one pixel. Returns false if one did.
bool check_shapes(const Architecture& arch, const ModelSpec& spec, Params& params) {
  int64_t height = spec.height, width = spec.width;
  const std::string input = size_text(spec.width, spec.height);
  for (size_t b = 0; b < arch.blocks.size(); ++b) {
    const ConvBlock& block = arch.blocks[b];
    const std::string where = " shrinks a " + input + " input to ";
    const std::string after = " after block " + std::to_string(b + 1);
    for (const ConvLayer& conv : block.convs) {
      height = keras_output_size(height, conv.kernel, conv.stride, conv.same);
      width = keras_output_size(width, conv.kernel, conv.stride, conv.same);
      if (height < 1 || width < 1) {
        params.fail("kernel_size", std::to_string(conv.kernel) + " with " + conv.stride_key + " " +
                                       std::to_string(conv.stride) + " and padding \"valid\"" + where +
                                       size_text(width, height) + after +
                                       "; use padding \"same\", a smaller kernel or a larger image_size");
        return false;
      }
    }
    height = keras_output_size(height, block.pool, block.pool, block.pool_same);
    width = keras_output_size(width, block.pool, block.pool, block.pool_same);
    if (height < 1 || width < 1) {
      params.fail("pool_size", std::to_string(block.pool) + " with pool_padding \"valid\"" + where +
                                   size_text(width, height) + after +
                                   "; use pool_padding \"same\", a smaller pool_size or a larger image_size");
      return false;
    }
  }
  return true;
}

torch::nn::AnyModule make_activation(const std::string& name) {
  if (name == "sigmoid") return torch::nn::AnyModule(torch::nn::Sigmoid());
  if (name == "tanh") return torch::nn::AnyModule(torch::nn::Tanh());
  return torch::nn::AnyModule(torch::nn::ReLU());
}

// Keras' defaults (Glorot-uniform kernels, zero biases) rather than LibTorch's
// Kaiming-uniform, so that results compare with the study's. LibTorch's fan computation
// for a conv kernel (channels x kernel area) is the same as Keras'.
void init_like_keras(torch::nn::Module& network) {
  torch::NoGradGuard no_grad;
  for (const auto& module : network.modules(/*include_self=*/false)) {
    if (auto* conv = module->as<torch::nn::Conv2d>()) {
      torch::nn::init::xavier_uniform_(conv->weight);
      torch::nn::init::zeros_(conv->bias);
    } else if (auto* linear = module->as<torch::nn::Linear>()) {
      torch::nn::init::xavier_uniform_(linear->weight);
      torch::nn::init::zeros_(linear->bias);
    }
  }
}

// Assumes check_shapes passed. Padding is computed here for the model's own input size,
// which is why a network only accepts the size it was built for.
torch::nn::Sequential build_layers(const Architecture& arch, const ModelSpec& spec) {
  torch::nn::Sequential layers;
  int64_t channels = spec.channels, height = spec.height, width = spec.width;
  for (const ConvBlock& block : arch.blocks) {
    for (const ConvLayer& conv : block.convs) {
      if (conv.same) {
        auto [top, bottom] = keras_same_padding(height, conv.kernel, conv.stride);
        auto [left, right] = keras_same_padding(width, conv.kernel, conv.stride);
        if (top + bottom + left + right > 0)
          layers->push_back(torch::nn::ZeroPad2d(torch::nn::ZeroPad2dOptions({left, right, top, bottom})));
      }
      layers->push_back(torch::nn::Conv2d(
          torch::nn::Conv2dOptions(channels, conv.filters, conv.kernel).stride(conv.stride)));
      layers->push_back(make_activation(arch.activation));
      channels = conv.filters;
      height = keras_output_size(height, conv.kernel, conv.stride, conv.same);
      width = keras_output_size(width, conv.kernel, conv.stride, conv.same);
    }
    if (block.pool_same) {
      auto [top, bottom] = keras_same_padding(height, block.pool, block.pool);
      auto [left, right] = keras_same_padding(width, block.pool, block.pool);
      // -inf padding is never the maximum, as in TensorFlow's "same" pooling.
      if (top + bottom + left + right > 0)
        layers->push_back(torch::nn::ConstantPad2d(torch::nn::ConstantPad2dOptions(
            {left, right, top, bottom}, -std::numeric_limits<double>::infinity())));
    }
    layers->push_back(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(block.pool)));
    height = keras_output_size(height, block.pool, block.pool, block.pool_same);
    width = keras_output_size(width, block.pool, block.pool, block.pool_same);
  }
  layers->push_back(torch::nn::Flatten());
  int64_t features = channels * height * width;
  for (size_t i = 0; i < arch.hidden_units.size(); ++i) {
    layers->push_back(torch::nn::Linear(features, arch.hidden_units[i]));
    layers->push_back(make_activation(arch.activation));
    if (i < arch.dropout.size() && arch.dropout[i] > 0) layers->push_back(torch::nn::Dropout(arch.dropout[i]));
    features = arch.hidden_units[i];
  }
  layers->push_back(torch::nn::Linear(features, spec.num_classes));
  return layers;
}

class HandcraftedNetwork : public bachlab::sdk::Network {
 public:
  explicit HandcraftedNetwork(torch::nn::Sequential layers) : layers_(register_module("layers", std::move(layers))) {
    init_like_keras(*this);
  }
  torch::Tensor forward(torch::Tensor images) override { return layers_->forward(images); }

 private:
  torch::nn::Sequential layers_;
};

// Builds after every check: params problems first, then shapes, so a user sees a wrong
// type before a shape computed from a fallback value.
std::shared_ptr<bachlab::sdk::Network> build_network(const Architecture& arch, const ModelSpec& spec,
                                                     Params& params, const std::string& model) {
  check_spec(spec, model);
  params.check();
  if (!check_shapes(arch, spec, params)) params.check();
  return std::make_shared<HandcraftedNetwork>(build_layers(arch, spec));
}

// ---------------------------------------------------------------------------------------

/// Model 4A's settings, as read from its [model] table.
struct Model4aOptions {
  /// Filters of each of the three convolutions; one integer sets all. Default: 32, 64, 128
  TORCH_ARG(std::vector<int64_t>, filters) = {32, 64, 128};
  /// Side of the square convolution kernels. Default: 5
  TORCH_ARG(int64_t, kernel_size) = 5;
  /// Stride of the convolutions. Default: 2
  TORCH_ARG(int64_t, strides) = 2;
  /// Convolution padding, "same" or "valid" (as Keras). Default: "same"
  TORCH_ARG(std::string, padding) = "same";
  /// Side and stride of the max-pooling windows. Default: 2
  TORCH_ARG(int64_t, pool_size) = 2;
  /// Pooling padding, "same" or "valid". Default: "same"
  TORCH_ARG(std::string, pool_padding) = "same";
  /// Units of each of the two dense hidden layers; one integer sets both. Default: 128, 128
  TORCH_ARG(std::vector<int64_t>, hidden_units) = {128, 128};
  /// Activation after every convolution and hidden layer. Default: "relu"
  TORCH_ARG(std::string, activation) = "relu";
  /// Dropout rate after the second dense layer (0 removes it). Default: 0.5
  TORCH_ARG(double, dropout) = 0.5;
};

Model4aOptions read_options(Params& params) {
  Model4aOptions o;
  o.filters(read_per_layer(params, "filters", o.filters(), {1, 4096}, "convolution"));
  o.kernel_size(params.get_int("kernel_size", o.kernel_size(), {1, 64}));
  o.strides(params.get_int("strides", o.strides(), {1, 64}));
  o.padding(params.get_string("padding", o.padding(), kPaddings));
  o.pool_size(params.get_int("pool_size", o.pool_size(), {1, 64}));
  o.pool_padding(params.get_string("pool_padding", o.pool_padding(), kPaddings));
  o.hidden_units(read_per_layer(params, "hidden_units", o.hidden_units(), {1, 65536}, "dense hidden layer"));
  o.activation(params.get_string("activation", o.activation(), kActivations));
  o.dropout(params.get_float("dropout", o.dropout(), {0.0, 0.99}));
  return o;
}

Architecture architecture(const Model4aOptions& o) {
  Architecture arch;
  for (int64_t filters : o.filters()) {
    ConvLayer conv{filters, o.kernel_size(), o.strides(), o.padding() == "same"};
    arch.blocks.push_back({{conv}, o.pool_size(), o.pool_padding() == "same"});
  }
  arch.hidden_units = o.hidden_units();
  arch.activation = o.activation();
  arch.dropout = {0.0, o.dropout()};
  return arch;
}

class Model4aPlugin : public bachlab::sdk::ModelPlugin {
 public:
  std::shared_ptr<bachlab::sdk::Network> create(const ModelSpec& spec, Params& params) const override {
    return build_network(architecture(read_options(params)), spec, params, "model4a");
  }
};

}  // namespace

BACHLAB_PLUGIN(model, "model4a", "1.0.0",
               "Model 4A: Model 2 with dropout after the second dense layer", Model4aPlugin)
