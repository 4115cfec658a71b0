// Stochastic gradient descent with optional (Nesterov) momentum. Default lr 0.01 as Keras.
#include <bachlab/sdk/optimizer.h>

namespace {

class SgdPlugin : public bachlab::sdk::OptimizerPlugin {
 public:
  std::shared_ptr<torch::optim::Optimizer> create(const std::vector<bachlab::sdk::ParameterGroup>& groups,
                                                  bachlab::sdk::Params& params) const override {
    torch::optim::SGDOptions options(params.get_float("lr", 1e-2, {1e-12, 10.0}));
    options.momentum(params.get_float("momentum", 0.0, {0.0, 1.0}))
        .dampening(params.get_float("dampening", 0.0, {0.0, 1.0}))
        .nesterov(params.get_bool("nesterov", false))
        .weight_decay(params.get_float("weight_decay", 0.0, {0.0, 1.0}));
    if (options.nesterov() && (options.momentum() <= 0 || options.dampening() != 0))
      params.fail("nesterov", "needs momentum > 0 and dampening = 0 (was momentum " +
                                  bachlab::sdk::to_string(bachlab::sdk::Scalar(options.momentum())) +
                                  ", dampening " +
                                  bachlab::sdk::to_string(bachlab::sdk::Scalar(options.dampening())) + ")");
    params.check();
    return bachlab::sdk::make_optimizer<torch::optim::SGD>(groups, options);
  }
};

}  // namespace

BACHLAB_PLUGIN(optimizer, "sgd", "1.0.0", "SGD with optional momentum and Nesterov momentum", SgdPlugin)
