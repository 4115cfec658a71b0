// Tests of the augmentation plugin @NAME@, loaded from its built .so as the host loads it.
#include <bachlab/sdk/param_table.h>
#include <bachlab/sdk/augmentation.h>
#include <bachlab/sdk/testing.h>

#include <ATen/CPUGeneratorImpl.h>

#include <gtest/gtest.h>

namespace {

std::shared_ptr<bachlab::sdk::Augmentation> make(bachlab::sdk::ParamTable params = bachlab::sdk::ParamTable("[[augment]]")) {
  const auto& plugin =
      bachlab::sdk::testing::load_plugin<bachlab::sdk::AugmentationPlugin>(PLUGIN_FILE, "augmentation");
  return plugin.create(params);
}

TEST(@NAME@, RegistersUnderItsName) {
  EXPECT_STREQ(bachlab::sdk::testing::load_descriptor(PLUGIN_FILE, "augmentation").name, "@NAME@");
}

TEST(@NAME@, KeepsShapeAndRangeAndLeavesTheInputAlone) {
  auto batch = torch::rand({4, 3, 16, 16});
  auto copy = batch.clone();
  torch::Generator generator = at::detail::createCPUGenerator(1);
  auto out = make()->apply(batch, generator);
  EXPECT_EQ(out.sizes(), batch.sizes());
  EXPECT_GE(out.min().item<float>(), 0.0f);
  EXPECT_LE(out.max().item<float>(), 1.0f);
  EXPECT_TRUE(batch.equal(copy));
}

TEST(@NAME@, SameSeedSameOutput) {
  auto batch = torch::rand({4, 3, 16, 16});
  auto augmentation = make();
  torch::Generator a = at::detail::createCPUGenerator(7), b = at::detail::createCPUGenerator(7);
  EXPECT_TRUE(augmentation->apply(batch, a).equal(augmentation->apply(batch, b)));
}

TEST(@NAME@, ProbabilityOneChangesEveryImage) {
  bachlab::sdk::ParamTable params("[[augment]]");
  params.set("p", 1.0);
  params.set("amount", 0.2);
  auto batch = torch::full({4, 3, 8, 8}, 0.5);
  torch::Generator generator = at::detail::createCPUGenerator(3);
  auto out = make(params)->apply(batch, generator);
  EXPECT_TRUE(((out - batch).abs().amax({1, 2, 3}) > 0).all().item<bool>());
}

TEST(@NAME@, RejectsAnUnknownKeyWithASuggestion) {
  bachlab::sdk::ParamTable params("[[augment]]");
  params.set("ammount", 0.1);
  try {
    make(params);
    FAIL() << "a misspelt key was accepted";
  } catch (const bachlab::Error& e) {
    EXPECT_STREQ(e.what(), "[[augment]] unknown key \"ammount\"; did you mean \"amount\"?");
  }
}

}  // namespace
