// Model 2 of the study: three 5x5 convolutions with stride 2, each followed by a 2x2
// max-pooling, then two dense hidden layers with more units than the baseline's, then
// the class logits. The study added the stride to keep the parameter count down. The
// architecture and its settings are shared with Models 4A and 4B (../common/model2_family.h).
#include "model2_family.h"

#include <bachlab/sdk/model.h>

#include <memory>

namespace {

namespace sdk = bachlab::sdk;
namespace plugins = bachlab::plugins;

class Model2Plugin : public sdk::ModelPlugin {
 public:
  std::shared_ptr<sdk::Network> create(const sdk::ModelSpec& spec, sdk::Params& params) const override {
    return plugins::build_conv_net(plugins::model2_architecture(plugins::read_model2_options(params)), spec, params,
                               "model2");
  }
};

}  // namespace

BACHLAB_PLUGIN(model, "model2", "1.0.0",
               "Model 2: three 5x5/2 convolutions, each with max-pooling; two dense layers of 128", Model2Plugin)
