// @NAME@: a model plugin (written by `bachlab new-plugin model @NAME@`). A small CNN:
// `blocks` convolution blocks (3x3 conv, ReLU, 2x2 max-pool), each with twice the filters
// of the one before, then global average pooling, dropout and a linear classifier. Global
// pooling makes it work at any input size of at least 2^blocks pixels.
// To change it: the layers live in Net, every setting is read once in read_options().
#include <bachlab/sdk/model.h>

#include <memory>
#include <string>
#include <vector>

namespace {

/// The settings of the [model] table, each with its default.
struct Options {
  /// Filters of the first block; each next block has twice as many. Default: 16
  int64_t filters = 16;
  /// Convolution blocks; each halves the image. Default: 2
  int64_t blocks = 2;
  /// Dropout before the classifier (training only). Default: 0.2
  double dropout = 0.2;
};

// Each setting is read once with its default and valid range; Params collects every
// problem (and every unknown key) so that check() reports them all with file and line.
Options read_options(bachlab::sdk::Params& params) {
  Options o;
  o.filters = params.get_int("filters", o.filters, {1, 512});
  o.blocks = params.get_int("blocks", o.blocks, {1, 6});
  o.dropout = params.get_float("dropout", o.dropout, {0.0, 0.9});
  params.check();
  return o;
}

class Net : public bachlab::sdk::Network {
 public:
  Net(const bachlab::sdk::ModelSpec& spec, const Options& o) {
    int64_t in = spec.channels;
    int64_t out = o.filters;
    for (int64_t b = 0; b < o.blocks; ++b) {
      convs_.push_back(register_module("conv" + std::to_string(b + 1),
                                       torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1))));
      in = out;
      out *= 2;
    }
    dropout_ = register_module("dropout", torch::nn::Dropout(o.dropout));
    classifier_ = register_module("classifier", torch::nn::Linear(in, spec.num_classes));
  }

  torch::Tensor forward(torch::Tensor x) override {
    for (auto& conv : convs_) x = torch::max_pool2d(torch::relu(conv->forward(x)), 2);
    return classifier_->forward(dropout_->forward(x.mean({2, 3})));
  }

 private:
  std::vector<torch::nn::Conv2d> convs_;
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::Linear classifier_{nullptr};
};

class Plugin : public bachlab::sdk::ModelPlugin {
 public:
  std::shared_ptr<bachlab::sdk::Network> create(const bachlab::sdk::ModelSpec& spec,
                                                bachlab::sdk::Params& params) const override {
    Options o = read_options(params);
    // Each block halves the image, so a too small image would reach the classifier empty.
    const int64_t smallest = int64_t{1} << o.blocks;
    if (spec.height < smallest || spec.width < smallest)
      throw bachlab::Error("[model] @NAME@ with blocks = " + std::to_string(o.blocks) + " needs images of at least " +
                           std::to_string(smallest) + "x" + std::to_string(smallest) + " (was " +
                           std::to_string(spec.height) + "x" + std::to_string(spec.width) +
                           "); lower blocks or raise [data] image_size");
    return std::make_shared<Net>(spec, o);
  }
};

}  // namespace

BACHLAB_PLUGIN(model, "@NAME@", "0.1.0", "@NAME@: conv blocks, global pooling, linear classifier", Plugin)
