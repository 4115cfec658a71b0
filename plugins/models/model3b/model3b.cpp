// Model 3B of the study: Model 2 (../common/model2_family.h) with more filters. The study
// tried it because Model 2 still underfitted; it scored about as Model 2 did. The study
// gives no filter counts; ours, 64, 128, 256, are twice Model 2's, still doubling per block.
#include "model2_family.h"

#include <bachlab/sdk/model.h>

#include <memory>

namespace {

namespace sdk = bachlab::sdk;
namespace plugins = bachlab::plugins;

class Model3bPlugin : public sdk::ModelPlugin {
 public:
  std::shared_ptr<sdk::Network> create(const sdk::ModelSpec& spec, sdk::Params& params) const override {
    const plugins::Model2Options o = plugins::read_model2_options(params, plugins::Model2Options().filters({64, 128, 256}));
    return plugins::build_conv_net(plugins::model2_architecture(o), spec, params, "model3b");
  }
};

}  // namespace

BACHLAB_PLUGIN(model, "model3b", "1.0.0",
               "Model 3B: Model 2 with twice the filters (64, 128, 256)", Model3bPlugin)
