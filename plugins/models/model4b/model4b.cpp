// Model 4B of the study: Model 2 (../common/model2_family.h) with dropout after each dense
// layer, trained with Model 3C's lower learning rate (a config setting). It kept the
// study's ~20% train/validation gap but scored slightly better on the test set. The
// dropout rates are not in the study; 0.5 is Keras' examples' usual rate.
#include "model2_family.h"

#include <bachlab/sdk/model.h>

#include <memory>

namespace {

namespace sdk = bachlab::sdk;
namespace plugins = bachlab::plugins;

class Model4bPlugin : public sdk::ModelPlugin {
 public:
  std::shared_ptr<sdk::Network> create(const sdk::ModelSpec& spec, sdk::Params& params) const override {
    plugins::ConvNetArchitecture arch = plugins::model2_architecture(plugins::read_model2_options(params));
    // Dropout rate after each of the two dense layers; one number sets both (0 removes one).
    arch.dropout = plugins::read_per_layer(params, "dropout", std::vector<double>{0.5, 0.5}, {0.0, 0.99}, "dense hidden layer");
    return plugins::build_conv_net(arch, spec, params, "model4b");
  }
};

}  // namespace

BACHLAB_PLUGIN(model, "model4b", "1.0.0",
               "Model 4B: Model 2 with dropout after each dense layer", Model4bPlugin)
