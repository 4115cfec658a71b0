// The SDK's input checks: check_spec (<bachlab/sdk/model.h>) and the batch helpers
// (<bachlab/sdk/batch_ops.h>), with the messages users read.
#include <bachlab/sdk/batch_ops.h>
#include <bachlab/sdk/model.h>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace bachlab::sdk {
namespace {

TEST(ConvNet, ASpecWithoutPixelsOrClassesIsRefused) {
  EXPECT_NO_THROW(check_spec(ModelSpec{1, 1, 1, 2}, "m"));
  try {
    check_spec(ModelSpec{3, 32, 0, 1}, "m");
    FAIL() << "no pixels and one class";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "model \"m\": expected an input of at least 1 channel and 1x1 pixels and at least 2 "
                           "classes, found 3 channels, 0x32 pixels and 1 classes; check [data] image_size and the "
                           "class list");
  }
}

TEST(BatchOps, ChecksNameThePluginAndWhatWasFound) {
  try {
    check_batch(torch::zeros({2, 1, 4, 4}), "tint", 3);
    FAIL() << "one channel is not RGB";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "augmentation \"tint\": expected 3 (RGB) channels, found a batch of shape (2, 1, 4, 4); "
                           "use it only with colour images");
  }
  EXPECT_THROW(check_batch(torch::zeros({4, 4}, torch::kLong), "tint"), Error);
  EXPECT_NO_THROW(check_unit_range(torch::full({1, 3, 2, 2}, 1.0005), "tint"));  // rounding slack
  EXPECT_THROW(check_unit_range(torch::full({1, 3, 2, 2}, -0.5), "tint"), Error);
}

TEST(BatchOps, UniformDependsOnlyOnTheGeneratorAndStaysInRange) {
  torch::Generator a = at::detail::createCPUGenerator(3), b = at::detail::createCPUGenerator(3);
  auto like = torch::zeros({1}, torch::kDouble);
  auto x = uniform(a, {1000}, -2.0, 3.0, like);
  auto y = uniform(b, {1000}, -2.0, 3.0, torch::zeros({1}));
  EXPECT_EQ(x.scalar_type(), torch::kDouble);
  EXPECT_TRUE(torch::equal(x.to(torch::kFloat), y));
  EXPECT_GE(x.min().item<double>(), -2.0);
  EXPECT_LT(x.max().item<double>(), 3.0);
  EXPECT_GT(x.max().item<double>() - x.min().item<double>(), 4.5);  // spans the range
}

}  // namespace
}  // namespace bachlab::sdk
