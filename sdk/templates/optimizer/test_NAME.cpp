// Tests of the optimizer plugin @NAME@, loaded from its built .so as the host loads it.
#include <bachlab/sdk/param_table.h>
#include <bachlab/sdk/optimizer.h>
#include <bachlab/sdk/testing.h>

#include <gtest/gtest.h>

namespace {

const bachlab::sdk::OptimizerPlugin& plugin() {
  return bachlab::sdk::testing::load_plugin<bachlab::sdk::OptimizerPlugin>(PLUGIN_FILE, "optimizer");
}

TEST(@NAME@, RegistersUnderItsName) {
  EXPECT_STREQ(bachlab::sdk::testing::load_descriptor(PLUGIN_FILE, "optimizer").name, "@NAME@");
}

TEST(@NAME@, MinimisesAQuadratic) {
  auto x = torch::zeros({3}, torch::requires_grad());
  bachlab::sdk::ParamTable params("[optimizer]");
  params.set("lr", 0.1);
  auto optimizer = plugin().create({{"all", {x}}}, params);
  for (int step = 0; step < 200; ++step) {
    optimizer->zero_grad();
    auto loss = (x - 3).pow(2).sum();
    loss.backward();
    optimizer->step();
  }
  EXPECT_TRUE(torch::allclose(x.detach(), torch::full({3}, 3.0), 1e-4, 1e-4)) << x;
}

TEST(@NAME@, OneParamGroupPerGroupOfTheModelAtItsLearningRate) {
  auto a = torch::zeros({2}, torch::requires_grad()), b = torch::zeros({2}, torch::requires_grad());
  bachlab::sdk::ParamTable params("[optimizer]");
  params.set("lr", 0.1);
  // The model's groups: the second trains at a tenth of the rate (its lr_scale).
  auto optimizer = plugin().create({{"head", {a}, true, 1.0}, {"backbone", {b}, true, 0.1}}, params);
  ASSERT_EQ(optimizer->param_groups().size(), 2u);
  EXPECT_DOUBLE_EQ(optimizer->param_groups()[1].options().get_lr(), 0.1 * 0.1);
}

TEST(@NAME@, RejectsSettingsOutOfRange) {
  bachlab::sdk::ParamTable params("[optimizer]");
  params.set("momentum", 2.0);
  try {
    plugin().create({}, params);
    FAIL() << "momentum = 2 was accepted";
  } catch (const bachlab::Error& e) {
    EXPECT_STREQ(e.what(), "[optimizer] momentum must be in 0.0..1.0 (was 2.0)");
  }
}

}  // namespace
