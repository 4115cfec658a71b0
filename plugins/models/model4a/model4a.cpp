// Model 4A of the study: Model 2 (../common/model2_family.h) with dropout after the second
// dense layer, trained with Model 3C's lower learning rate (a config setting). The study's
// best handcrafted model and the base of its 100-trial tuning run, which searched filters
// 32..256, kernel_size 3/5/11, strides 1/2, padding same/valid, hidden_units 64..512 and
// activation relu/sigmoid: all params here. The dropout rate is not in the study; 0.5 is
// Keras' examples' usual rate.
#include "model2_family.h"

#include <bachlab/sdk/model.h>

#include <memory>

namespace {

namespace sdk = bachlab::sdk;
namespace plugins = bachlab::plugins;

class Model4aPlugin : public sdk::ModelPlugin {
 public:
  std::shared_ptr<sdk::Network> create(const sdk::ModelSpec& spec, sdk::Params& params) const override {
    plugins::ConvNetArchitecture arch = plugins::model2_architecture(plugins::read_model2_options(params));
    // Dropout rate after the second dense layer (0 removes it).
    arch.dropout = {0.0, params.get_float("dropout", 0.5, {0.0, 0.99})};
    return plugins::build_conv_net(arch, spec, params, "model4a");
  }
};

}  // namespace

BACHLAB_PLUGIN(model, "model4a", "1.0.0",
               "Model 4A: Model 2 with dropout after the second dense layer", Model4aPlugin)
