// Model 3A of the study: Model 2 (../common/model2_family.h) with two more convolutions
// before the last max-pooling. The study tried it because Model 2 underfitted; it fell back
// to the baseline's accuracy.
//
// The study gives no count, filters or strides for the extra layers; our choices, each a
// param: extra_convolutions 2; extra_filters the third block's (128 by default), with
// Model 2's kernel_size and padding; extra_strides 1, since the study names only "more
// convolutions" and stride 1 keeps the third block's 7x7 map (at 224x224) instead of
// shrinking it to 2x2 before the pooling.
#include "model2_family.h"

#include <bachlab/sdk/model.h>

#include <memory>

namespace {

namespace sdk = bachlab::sdk;
namespace plugins = bachlab::plugins;

class Model3aPlugin : public sdk::ModelPlugin {
 public:
  std::shared_ptr<sdk::Network> create(const sdk::ModelSpec& spec, sdk::Params& params) const override {
    const plugins::Model2Options o = plugins::read_model2_options(params);
    plugins::ConvNetArchitecture arch = plugins::model2_architecture(o);
    const int64_t extra = params.get_int("extra_convolutions", 2, {0, 16});
    const int64_t filters = params.get_int("extra_filters", o.filters().back(), {1, 4096});
    params.describe("extra_filters", "", "the last filters value");
    const int64_t strides = params.get_int("extra_strides", 1, {1, 64});
    for (int64_t i = 0; i < extra; ++i)
      arch.blocks.back().convs.push_back({filters, o.kernel_size(), strides, o.padding(), "extra_strides"});
    return plugins::build_conv_net(arch, spec, params, "model3a");
  }
};

}  // namespace

BACHLAB_PLUGIN(model, "model3a", "1.0.0",
               "Model 3A: Model 2 with two more 5x5 convolutions before the last max-pooling", Model3aPlugin)
