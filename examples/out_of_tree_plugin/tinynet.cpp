// tinynet: the smallest useful CNN, as an example of a model plugin written outside the
// bachlab tree. Two 3x3 convolution blocks (conv, ReLU, 2x2 max-pool), global average
// pooling, and a linear classifier. Global pooling makes it work at any input size.
#include <bachlab/sdk/model.h>

namespace {

struct TinynetOptions {
  /// Filters of the first block; the second has twice as many. Default: 16
  int64_t filters = 16;
};

class Tinynet : public bachlab::sdk::Network {
 public:
  Tinynet(const bachlab::sdk::ModelSpec& spec, const TinynetOptions& options)
      : conv1_(register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(spec.channels, options.filters, 3).padding(1)))),
        conv2_(register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(options.filters, 2 * options.filters, 3).padding(1)))),
        classifier_(register_module("classifier", torch::nn::Linear(2 * options.filters, spec.num_classes))) {}

  torch::Tensor forward(torch::Tensor x) override {
    x = torch::max_pool2d(torch::relu(conv1_->forward(x)), 2);
    x = torch::max_pool2d(torch::relu(conv2_->forward(x)), 2);
    return classifier_->forward(x.mean({2, 3}));
  }

 private:
  torch::nn::Conv2d conv1_, conv2_;
  torch::nn::Linear classifier_;
};

class TinynetPlugin : public bachlab::sdk::ModelPlugin {
 public:
  std::shared_ptr<bachlab::sdk::Network> create(const bachlab::sdk::ModelSpec& spec,
                                                bachlab::sdk::Params& params) const override {
    TinynetOptions options;
    options.filters = params.get_int("filters", options.filters, {1, 512});
    params.check();
    if (spec.height < 4 || spec.width < 4)
      throw bachlab::Error("tinynet needs inputs of at least 4x4 (was " + std::to_string(spec.height) + "x" +
                           std::to_string(spec.width) + ")");
    return std::make_shared<Tinynet>(spec, options);
  }
};

}  // namespace

BACHLAB_PLUGIN(model, "tinynet", "1.0.0", "Out-of-tree example: two conv blocks and global pooling", TinynetPlugin)
