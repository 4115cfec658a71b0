// Tests of the model plugin @NAME@, loaded from its built .so as the host loads it.
#include <bachlab/sdk/param_table.h>
#include <bachlab/sdk/model.h>
#include <bachlab/sdk/testing.h>

#include <gtest/gtest.h>

namespace {

const bachlab::sdk::ModelPlugin& plugin() {
  return bachlab::sdk::testing::load_plugin<bachlab::sdk::ModelPlugin>(PLUGIN_FILE, "model");
}

TEST(@NAME@, RegistersUnderItsName) {
  EXPECT_STREQ(bachlab::sdk::testing::load_descriptor(PLUGIN_FILE, "model").name, "@NAME@");
}

TEST(@NAME@, GivesOneLogitPerClass) {
  bachlab::sdk::ParamTable params("[model]");
  auto net = plugin().create(bachlab::sdk::ModelSpec{3, 32, 48, 4}, params);
  EXPECT_EQ(net->forward(torch::rand({2, 3, 32, 48})).sizes(), (std::vector<int64_t>{2, 4}));
}

TEST(@NAME@, LearnsAFixedBatch) {
  torch::manual_seed(0);
  bachlab::sdk::ParamTable params("[model]");
  params.set("dropout", 0.0);
  auto net = plugin().create(bachlab::sdk::ModelSpec{3, 16, 16, 4}, params);
  auto images = torch::rand({8, 3, 16, 16});
  auto labels = torch::arange(8) % 4;
  torch::optim::Adam optimizer(net->parameters(), torch::optim::AdamOptions(0.01));
  auto loss_of = [&] { return torch::nn::functional::cross_entropy(net->forward(images), labels); };
  const double before = loss_of().item<double>();
  for (int step = 0; step < 30; ++step) {
    optimizer.zero_grad();
    auto loss = loss_of();
    loss.backward();
    optimizer.step();
  }
  EXPECT_LT(loss_of().item<double>(), before);
}

TEST(@NAME@, RejectsSettingsOutOfRange) {
  bachlab::sdk::ParamTable params("[model]");
  params.set("filters", int64_t{0});
  try {
    plugin().create(bachlab::sdk::ModelSpec{}, params);
    FAIL() << "filters = 0 was accepted";
  } catch (const bachlab::Error& e) {
    EXPECT_STREQ(e.what(), "[model] filters must be in 1..512 (was 0)");
  }
}

TEST(@NAME@, RejectsImagesTooSmallForItsBlocks) {
  bachlab::sdk::ParamTable params("[model]");
  params.set("blocks", int64_t{3});
  EXPECT_THROW(plugin().create(bachlab::sdk::ModelSpec{3, 4, 4, 4}, params), bachlab::Error);
}

}  // namespace
