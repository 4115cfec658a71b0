// @NAME@: an optimizer plugin (written by `bachlab new-plugin optimizer @NAME@`). Plain
// stochastic gradient descent with optional momentum and weight decay. The host passes the
// model's trainable parameter groups; make_optimizer builds one torch param group per
// entry with these options and the group's learning rate (lr * its lr_scale).
#include <bachlab/sdk/optimizer.h>

#include <memory>
#include <vector>

namespace {

class Plugin : public bachlab::sdk::OptimizerPlugin {
 public:
  std::shared_ptr<torch::optim::Optimizer> create(const std::vector<bachlab::sdk::ParameterGroup>& groups,
                                                  bachlab::sdk::Params& params) const override {
    torch::optim::SGDOptions options(params.get_float("lr", 0.01, {1e-12, 10.0}));
    options.momentum(params.get_float("momentum", 0.0, {0.0, 1.0}))
        .weight_decay(params.get_float("weight_decay", 0.0, {0.0, 1.0}));
    params.check();
    return bachlab::sdk::make_optimizer<torch::optim::SGD>(groups, options);
  }
};

}  // namespace

BACHLAB_PLUGIN(optimizer, "@NAME@", "0.1.0", "@NAME@: SGD with optional momentum and weight decay", Plugin)
