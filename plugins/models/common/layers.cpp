#include <bachlab/plugins/layers.h>

namespace bachlab::plugins {

namespace {

std::string size_text(int64_t width, int64_t height) { return std::to_string(width) + "x" + std::to_string(height); }

}  // namespace

SequentialNetwork::SequentialNetwork(torch::nn::Sequential layers)
    : layers_(register_module("layers", std::move(layers))) {}

torch::Tensor SequentialNetwork::forward(torch::Tensor images) { return layers_->forward(images); }

const std::vector<std::string>& padding_names() {
  static const std::vector<std::string> names = {"same", "valid"};
  return names;
}

std::string padding_name(Padding padding) { return padding == Padding::same ? "same" : "valid"; }

Padding read_padding(Params& params, const std::string& key, Padding fallback) {
  return params.get_string(key, padding_name(fallback), padding_names()) == "same" ? Padding::same : Padding::valid;
}

int64_t keras_output_size(int64_t in, int64_t kernel, int64_t stride, Padding padding) {
  if (padding == Padding::same) return (in + stride - 1) / stride;
  return in < kernel ? 0 : (in - kernel) / stride + 1;
}

std::pair<int64_t, int64_t> keras_same_padding(int64_t in, int64_t kernel, int64_t stride) {
  int64_t out = (in + stride - 1) / stride;
  int64_t total = std::max<int64_t>((out - 1) * stride + kernel - in, 0);
  return {total / 2, total - total / 2};
}

const std::vector<std::string>& activation_names() {
  static const std::vector<std::string> names = {"relu", "sigmoid", "tanh"};
  return names;
}

std::string activation_name(Activation activation) {
  switch (activation) {
    case Activation::sigmoid: return "sigmoid";
    case Activation::tanh: return "tanh";
    case Activation::relu: break;
  }
  return "relu";
}

Activation read_activation(Params& params, const std::string& key, Activation fallback) {
  std::string name = params.get_string(key, activation_name(fallback), activation_names());
  if (name == "sigmoid") return Activation::sigmoid;
  if (name == "tanh") return Activation::tanh;
  return Activation::relu;
}

torch::nn::AnyModule make_activation(Activation activation) {
  switch (activation) {
    case Activation::sigmoid: return torch::nn::AnyModule(torch::nn::Sigmoid());
    case Activation::tanh: return torch::nn::AnyModule(torch::nn::Tanh());
    case Activation::relu: break;
  }
  return torch::nn::AnyModule(torch::nn::ReLU());
}

void init_like_keras(torch::nn::Module& network) {
  torch::NoGradGuard no_grad;
  for (const auto& module : network.modules(/*include_self=*/false)) {
    if (auto* conv = module->as<torch::nn::Conv2d>()) {
      torch::nn::init::xavier_uniform_(conv->weight);
      if (conv->bias.defined()) torch::nn::init::zeros_(conv->bias);
    } else if (auto* linear = module->as<torch::nn::Linear>()) {
      torch::nn::init::xavier_uniform_(linear->weight);
      if (linear->bias.defined()) torch::nn::init::zeros_(linear->bias);
    }
  }
}

std::vector<ConvBlock> single_conv_blocks(const std::vector<int64_t>& filters, int64_t kernel, int64_t stride,
                                                 Padding padding, int64_t pool, Padding pool_padding) {
  std::vector<ConvBlock> blocks;
  for (int64_t f : filters) blocks.push_back(ConvBlock{{ConvLayer{f, kernel, stride, padding}}, pool, pool_padding});
  return blocks;
}

bool check_shapes(const ConvNetArchitecture& arch, const ModelSpec& spec, Params& params) {
  int64_t height = spec.height, width = spec.width;
  const std::string input = size_text(spec.width, spec.height);
  for (size_t b = 0; b < arch.blocks.size(); ++b) {
    const ConvBlock& block = arch.blocks[b];
    const std::string where = " shrinks a " + input + " input to ";
    const std::string after = " after block " + std::to_string(b + 1);
    for (const ConvLayer& conv : block.convs) {
      height = keras_output_size(height, conv.kernel, conv.stride, conv.padding);
      width = keras_output_size(width, conv.kernel, conv.stride, conv.padding);
      // Only "valid" can get here: "same" keeps at least one pixel.
      if (height < 1 || width < 1) {
        params.fail("kernel_size", std::to_string(conv.kernel) + " with " + conv.stride_key + " " +
                                       std::to_string(conv.stride) + " and padding \"valid\"" + where +
                                       size_text(width, height) + after +
                                       "; use padding \"same\", a smaller kernel or a larger image_size");
        return false;
      }
    }
    height = keras_output_size(height, block.pool, block.pool, block.pool_padding);
    width = keras_output_size(width, block.pool, block.pool, block.pool_padding);
    if (height < 1 || width < 1) {
      params.fail("pool_size", std::to_string(block.pool) + " with pool_padding \"valid\"" + where +
                                   size_text(width, height) + after +
                                   "; use pool_padding \"same\", a smaller pool_size or a larger image_size");
      return false;
    }
  }
  return true;
}

torch::nn::Sequential build_conv_layers(const ConvNetArchitecture& arch, const ModelSpec& spec) {
  torch::nn::Sequential layers;
  int64_t channels = spec.channels, height = spec.height, width = spec.width;
  for (const ConvBlock& block : arch.blocks) {
    for (const ConvLayer& conv : block.convs) {
      if (conv.padding == Padding::same) {
        auto [top, bottom] = keras_same_padding(height, conv.kernel, conv.stride);
        auto [left, right] = keras_same_padding(width, conv.kernel, conv.stride);
        if (top + bottom + left + right > 0)
          layers->push_back(torch::nn::ZeroPad2d(torch::nn::ZeroPad2dOptions({left, right, top, bottom})));
      }
      layers->push_back(torch::nn::Conv2d(
          torch::nn::Conv2dOptions(channels, conv.filters, conv.kernel).stride(conv.stride)));
      layers->push_back(make_activation(arch.activation));
      channels = conv.filters;
      height = keras_output_size(height, conv.kernel, conv.stride, conv.padding);
      width = keras_output_size(width, conv.kernel, conv.stride, conv.padding);
    }
    if (block.pool_padding == Padding::same) {
      auto [top, bottom] = keras_same_padding(height, block.pool, block.pool);
      auto [left, right] = keras_same_padding(width, block.pool, block.pool);
      // -inf padding is never the maximum, as in TensorFlow's "same" pooling.
      if (top + bottom + left + right > 0)
        layers->push_back(torch::nn::ConstantPad2d(torch::nn::ConstantPad2dOptions(
            {left, right, top, bottom}, -std::numeric_limits<double>::infinity())));
    }
    layers->push_back(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(block.pool)));
    height = keras_output_size(height, block.pool, block.pool, block.pool_padding);
    width = keras_output_size(width, block.pool, block.pool, block.pool_padding);
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

std::shared_ptr<Network> build_conv_net(const ConvNetArchitecture& arch, const ModelSpec& spec,
                                               Params& params, const std::string& model) {
  sdk::check_spec(spec, model);
  params.check();
  if (!check_shapes(arch, spec, params)) params.check();
  auto network = std::make_shared<SequentialNetwork>(build_conv_layers(arch, spec));
  init_like_keras(*network);
  return network;
}
}  // namespace bachlab::plugins
