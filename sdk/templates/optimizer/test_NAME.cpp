// Tests of the optimizer plugin @NAME@, loaded from its built .so as the host loads it.
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
  bachlab::sdk::Params params("[optimizer]");
  params.set("lr", 0.1);
  auto optimizer = plugin().create({{x}}, params);
  for (int step = 0; step < 200; ++step) {
    optimizer->zero_grad();
    auto loss = (x - 3).pow(2).sum();
    loss.backward();
    optimizer->step();
  }
  EXPECT_TRUE(torch::allclose(x.detach(), torch::full({3}, 3.0), 1e-4, 1e-4)) << x;
}

TEST(@NAME@, OneParamGroupPerGroupOfTheModel) {
  auto a = torch::zeros({2}, torch::requires_grad()), b = torch::zeros({2}, torch::requires_grad());
  bachlab::sdk::Params params("[optimizer]");
  EXPECT_EQ(plugin().create({{a}, {b}}, params)->param_groups().size(), 2u);
}

TEST(@NAME@, RejectsSettingsOutOfRange) {
  bachlab::sdk::Params params("[optimizer]");
  params.set("momentum", 2.0);
  try {
    plugin().create({}, params);
    FAIL() << "momentum = 2 was accepted";
  } catch (const bachlab::Error& e) {
    EXPECT_STREQ(e.what(), "[optimizer] momentum must be in 0.0..1.0 (was 2.0)");
  }
}

}  // namespace
