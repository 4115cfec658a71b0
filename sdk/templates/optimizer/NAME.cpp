// @NAME@: an optimizer plugin (written by `bachlab new-plugin optimizer @NAME@`). Plain
// stochastic gradient descent with optional momentum and weight decay. The host passes the
// model's trainable parameter groups and afterwards scales each group's learning rate by
// its lr_scale, so the plugin builds one torch param group per entry, all with these options.
#include <bachlab/sdk/optimizer.h>

#include <memory>
#include <vector>

namespace {

class Plugin : public bachlab::sdk::OptimizerPlugin {
 public:
  std::unique_ptr<torch::optim::Optimizer> create(const std::vector<std::vector<torch::Tensor>>& groups,
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
