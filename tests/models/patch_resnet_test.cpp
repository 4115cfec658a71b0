// patch_resnet, loaded from the build's plugin folder as the host loads it: the hand-counted
// weights of its defaults, logits for any patch size (global average pooling), batch norm
// acting (training and evaluation differ), and its settings checked.
#include "host/plugins/registry.h"

#include <bachlab/sdk/param_table.h>
#include <gtest/gtest.h>

namespace {

using bachlab::Error;
using bachlab::host::PluginRegistry;
using bachlab::sdk::ModelSpec;
using bachlab::sdk::ParamTable;
using bachlab::sdk::Scalar;

class PatchResnetTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    registry_ = new PluginRegistry();
    if (!registry_->load(std::filesystem::path(BACHLAB_TEST_PLUGIN_DIR) / "bachlab-model-patch_resnet.so"))
      FAIL() << registry_->rejections().back().reason;
  }
  static void TearDownTestSuite() { delete registry_; }
  void SetUp() override { torch::manual_seed(3); }

  static std::shared_ptr<bachlab::sdk::Network> create(int64_t h, int64_t w, ParamTable params = ParamTable("[model]")) {
    return registry_->create_model("patch_resnet", ModelSpec{3, h, w, 4}, params);
  }
  static int64_t count(torch::nn::Module& m) {
    int64_t n = 0;
    for (const auto& p : m.parameters()) n += p.numel();
    return n;
  }
  static PluginRegistry* registry_;
};

PluginRegistry* PatchResnetTest::registry_ = nullptr;

// conv3x3(in, out) = 9*in*out (no bias: batch norm follows); bn(c) = 2c; conv1x1 = in*out.
constexpr int64_t conv3(int64_t in, int64_t out) { return 9 * in * out; }
constexpr int64_t bn(int64_t c) { return 2 * c; }
constexpr int64_t block(int64_t in, int64_t out) {
  return conv3(in, out) + bn(out) + conv3(out, out) + bn(out) + (in != out ? in * out + bn(out) : 0);
}

TEST_F(PatchResnetTest, DefaultsHaveTheHandCountedWeightsAtAnyInputSize) {
  // Stem 3->32, stages 32, 64, 128, 256 of one block each, linear 256->4.
  constexpr int64_t expected = conv3(3, 32) + bn(32) + block(32, 32) + block(32, 64) + block(64, 128) +
                               block(128, 256) + 256 * 4 + 4;
  static_assert(expected == 1227428, "the figure patch_resnet.cpp and docs/models.md state");
  for (auto [h, w] : {std::pair<int64_t, int64_t>{64, 64}, {128, 128}, {96, 160}}) {
    SCOPED_TRACE(std::to_string(h) + "x" + std::to_string(w));
    auto network = create(h, w);
    EXPECT_EQ(count(*network), expected);
    network->eval();
    torch::NoGradGuard no_grad;
    auto logits = network->forward(torch::rand({2, 3, h, w}));
    EXPECT_EQ(logits.sizes(), torch::IntArrayRef({2, 4}));
    EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
  }
}

TEST_F(PatchResnetTest, BatchNormMakesTrainingAndEvaluationDiffer) {
  auto network = create(32, 32);
  const torch::Tensor x = torch::rand({4, 3, 32, 32}) * 3 + 1;  // far from unit statistics
  torch::NoGradGuard no_grad;
  network->train();
  const torch::Tensor train_logits = network->forward(x);
  network->eval();
  EXPECT_FALSE(torch::allclose(train_logits, network->forward(x), 1e-3, 1e-3));
}

TEST_F(PatchResnetTest, SettingsShapeTheNetworkAndBadOnesAreRefused) {
  ParamTable wide("[model]");
  wide.set("widths", std::vector<Scalar>{int64_t{16}, int64_t{32}});
  wide.set("blocks", int64_t{2});
  EXPECT_EQ(count(*create(32, 32, wide)),
            conv3(3, 16) + bn(16) + 2 * block(16, 16) + block(16, 32) + block(32, 32) + 32 * 4 + 4);
  ParamTable bad("[model]");
  bad.set("blocks", int64_t{0});
  try {
    create(32, 32, bad);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("blocks must be in 1..16 (was 0)"), std::string::npos) << e.what();
  }
}

}  // namespace
