// Adam (Kingma & Ba, 2015), the study's optimizer for every handcrafted and transfer model.
// Defaults are Keras' (lr 0.001, betas 0.9/0.999) except eps, where LibTorch's 1e-8 is kept;
// Keras uses 1e-7, which changes nothing measurable at these learning rates.
#include <bachlab/sdk/optimizer.h>

namespace {

class AdamPlugin : public bachlab::sdk::OptimizerPlugin {
 public:
  std::shared_ptr<torch::optim::Optimizer> create(const std::vector<bachlab::sdk::ParameterGroup>& groups,
                                                  bachlab::sdk::Params& params) const override {
    torch::optim::AdamOptions options(params.get_float("lr", 1e-3, {1e-12, 10.0}));
    options.betas({params.get_float("beta1", 0.9, {0.0, 0.999999}), params.get_float("beta2", 0.999, {0.0, 0.999999})})
        .eps(params.get_float("eps", 1e-8, {0.0, 1.0}))
        .weight_decay(params.get_float("weight_decay", 0.0, {0.0, 1.0}))
        .amsgrad(params.get_bool("amsgrad", false));
    params.check();
    return bachlab::sdk::make_optimizer<torch::optim::Adam>(groups, options);
  }
};

}  // namespace

BACHLAB_PLUGIN(optimizer, "adam", "1.0.0", "Adam with optional weight decay and AMSGrad", AdamPlugin)
