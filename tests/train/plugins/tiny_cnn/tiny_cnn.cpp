// A deliberately small model for the trainer's tests: one convolution, global pooling,
// one hidden layer with dropout (so resume must restore the dropout generator), and an
// optional L2 term (so the regularization path is exercised). Trains in milliseconds.
#include <bachlab/sdk/model.h>

namespace {

struct TinyCnnOptions {
  int64_t filters = 8;
  int64_t hidden = 16;
  double dropout = 0.25;
  double l2 = 0.0;
};

class TinyCnn : public bachlab::sdk::Network {
 public:
  TinyCnn(const bachlab::sdk::ModelSpec& spec, const TinyCnnOptions& options)
      : options_(options),
        conv_(register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(spec.channels, options.filters, 3)
                                                            .padding(1)))),
        hidden_(register_module("hidden", torch::nn::Linear(options.filters, options.hidden))),
        dropout_(register_module("dropout", torch::nn::Dropout(options.dropout))),
        out_(register_module("out", torch::nn::Linear(options.hidden, spec.num_classes))) {}

  torch::Tensor forward(torch::Tensor images) override {
    torch::Tensor x = torch::relu(conv_->forward(images));
    x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
    x = dropout_->forward(torch::relu(hidden_->forward(x)));
    return out_->forward(x);
  }

  torch::Tensor regularization() override {
    if (options_.l2 == 0.0) return {};
    return options_.l2 * hidden_->weight.pow(2).sum();
  }

 private:
  TinyCnnOptions options_;
  torch::nn::Conv2d conv_;
  torch::nn::Linear hidden_;
  torch::nn::Dropout dropout_;
  torch::nn::Linear out_;
};

class TinyCnnPlugin : public bachlab::sdk::ModelPlugin {
 public:
  std::shared_ptr<bachlab::sdk::Network> create(const bachlab::sdk::ModelSpec& spec,
                                                bachlab::sdk::Params& params) const override {
    TinyCnnOptions options;
    options.filters = params.get_int("filters", options.filters, {1, 256});
    options.hidden = params.get_int("hidden", options.hidden, {1, 1024});
    options.dropout = params.get_float("dropout", options.dropout, {0.0, 0.9});
    options.l2 = params.get_float("l2", options.l2, {0.0, 1.0});
    params.check();
    return std::make_shared<TinyCnn>(spec, options);
  }
};

}  // namespace

BACHLAB_PLUGIN(model, "tiny_cnn", "1.0.0", "Test-only model: conv, global pooling, dropout", TinyCnnPlugin)
