// RMSprop, one of the three optimizers the study's tuner chose between. The default
// smoothing constant `alpha` is Keras' rho = 0.9, not LibTorch's 0.99, so that results
// compare with the study's.
#include <bachlab/sdk/optimizer.h>

namespace {

class RmspropPlugin : public bachlab::sdk::OptimizerPlugin {
 public:
  std::shared_ptr<torch::optim::Optimizer> create(const std::vector<bachlab::sdk::ParameterGroup>& groups,
                                                  bachlab::sdk::Params& params) const override {
    torch::optim::RMSpropOptions options(params.get_float("lr", 1e-3, {1e-12, 10.0}));
    options.alpha(params.get_float("alpha", 0.9, {0.0, 1.0}))
        .eps(params.get_float("eps", 1e-7, {0.0, 1.0}))
        .momentum(params.get_float("momentum", 0.0, {0.0, 1.0}))
        .centered(params.get_bool("centered", false))
        .weight_decay(params.get_float("weight_decay", 0.0, {0.0, 1.0}));
    params.check();
    return bachlab::sdk::make_optimizer<torch::optim::RMSprop>(groups, options);
  }
};

}  // namespace

BACHLAB_PLUGIN(optimizer, "rmsprop", "1.0.0", "RMSprop (Keras defaults: alpha 0.9, eps 1e-7)", RmspropPlugin)
