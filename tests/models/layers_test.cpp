// The in-tree plugins' Keras-style layer helpers (<bachlab/plugins/layers.h>, the
// bachlab_model_common library): the size maths the models build on, against values
// worked out by hand from TensorFlow's rules, and the messages users read.
#include <bachlab/plugins/layers.h>
#include <bachlab/sdk/param_table.h>

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace bachlab::plugins {
namespace {

using sdk::KeySpec;
using sdk::ParamTable;

using Pads = std::pair<int64_t, int64_t>;

TEST(KerasOutputSize, ValidUsesOnlyWholeWindows) {
  EXPECT_EQ(keras_output_size(32, 3, 1, Padding::valid), 30);   // 32 - 3 + 1
  EXPECT_EQ(keras_output_size(224, 5, 2, Padding::valid), 110);  // floor(219 / 2) + 1
  EXPECT_EQ(keras_output_size(7, 2, 2, Padding::valid), 3);      // the odd row is dropped
  EXPECT_EQ(keras_output_size(3, 3, 1, Padding::valid), 1);      // exactly one window
  EXPECT_EQ(keras_output_size(2, 3, 1, Padding::valid), 0);      // no window fits
}

TEST(KerasOutputSize, SameIsTheCeilingOfInputOverStride) {
  EXPECT_EQ(keras_output_size(32, 3, 1, Padding::same), 32);
  EXPECT_EQ(keras_output_size(224, 5, 2, Padding::same), 112);
  EXPECT_EQ(keras_output_size(7, 2, 2, Padding::same), 4);
  EXPECT_EQ(keras_output_size(1, 11, 4, Padding::same), 1);  // never below one pixel
}

TEST(KerasSamePadding, PutsTheOddPixelAfterAsTensorFlowDoes) {
  EXPECT_EQ(keras_same_padding(32, 3, 1), Pads(1, 1));   // total 2
  EXPECT_EQ(keras_same_padding(224, 5, 2), Pads(1, 2));  // out 112: 111 * 2 + 5 - 224 = 3
  EXPECT_EQ(keras_same_padding(7, 2, 2), Pads(0, 1));    // out 4: 3 * 2 + 2 - 7 = 1
  EXPECT_EQ(keras_same_padding(8, 2, 2), Pads(0, 0));    // windows tile exactly
  EXPECT_EQ(keras_same_padding(5, 1, 3), Pads(0, 0));    // negative total is no padding
}

TEST(ReadPerLayer, OneValueSetsEveryLayerAndAbsentKeepsTheDefaults) {
  ParamTable params("[model]");
  params.set("filters", int64_t{48}, {"m.toml", 2});
  EXPECT_EQ(read_per_layer<int64_t>(params, "filters", {32, 64, 128}, {1, 4096}, "convolution"),
            (std::vector<int64_t>{48, 48, 48}));
  EXPECT_EQ(read_per_layer<double>(params, "dropout", {0.5, 0.25}, {0.0, 0.99}, "dense hidden layer"),
            (std::vector<double>{0.5, 0.25}));
  EXPECT_TRUE(params.problems().empty());
}

TEST(ReadPerLayer, AListGivesEachLayerItsOwnValue) {
  ParamTable params("[model]");
  params.set("dropout", std::vector<Scalar>{0.0, int64_t{1}}, {"m.toml", 3});
  EXPECT_EQ(read_per_layer<double>(params, "dropout", {0.5, 0.5}, {0.0, 1.0}, "dense hidden layer"),
            (std::vector<double>{0.0, 1.0}));
  EXPECT_TRUE(params.problems().empty());
}

TEST(ReadPerLayer, OneValueAndAListRecordTheSameSpec) {
  ParamTable one("[model]"), list("[model]");
  one.set("filters", int64_t{48});
  list.set("filters", std::vector<Scalar>{int64_t{8}, int64_t{16}, int64_t{32}});
  read_per_layer<int64_t>(one, "filters", {32, 64, 128}, {1, 4096}, "convolution");
  read_per_layer<int64_t>(list, "filters", {32, 64, 128}, {1, 4096}, "convolution");
  const KeySpec expected{"integer or list of integers", "[32, 64, 128]", "1..4096", ""};
  EXPECT_EQ(one.specs().at("filters"), expected);
  EXPECT_EQ(list.specs().at("filters"), expected);
}

TEST(ReadPerLayer, AListOfTheWrongLengthSaysHowManyAndKeepsTheDefaults) {
  ParamTable params("[model]");
  params.set("filters", std::vector<Scalar>{int64_t{32}, int64_t{64}}, {"m.toml", 2});
  params.set("dropout", std::vector<Scalar>{0.5, 0.5, 0.5}, {"m.toml", 5});
  EXPECT_EQ(read_per_layer<int64_t>(params, "filters", {32, 64, 128}, {1, 4096}, "convolution"),
            (std::vector<int64_t>{32, 64, 128}));
  EXPECT_EQ(read_per_layer<double>(params, "dropout", {0.5, 0.5}, {0.0, 0.99}, "dense hidden layer"),
            (std::vector<double>{0.5, 0.5}));
  EXPECT_EQ(params.problems(),
            (std::vector<std::string>{
                "m.toml:2: [model] filters must list 3 values, one per convolution (was [32, 64]); give 3 values or "
                "one integer for all",
                "m.toml:5: [model] dropout must list 2 values, one per dense hidden layer (was [0.5, 0.5, 0.5]); "
                "give 2 values or one number for all"}));
}

TEST(ReadPerLayer, RangesAndTypesAreCheckedAsForOneValue) {
  ParamTable params("[model]");
  params.set("filters", int64_t{0}, {"m.toml", 2});
  params.set("hidden_units", std::vector<Scalar>{int64_t{64}, 0.5}, {"m.toml", 3});
  EXPECT_EQ(read_per_layer<int64_t>(params, "filters", {32}, {1, 4096}, "convolution"), (std::vector<int64_t>{32}));
  EXPECT_EQ(read_per_layer<int64_t>(params, "hidden_units", {128, 128}, {1, 65536}, "dense hidden layer"),
            (std::vector<int64_t>{128, 128}));
  EXPECT_EQ(params.problems(),
            (std::vector<std::string>{"m.toml:2: [model] filters must be in 1..4096 (was 0)",
                                      "m.toml:3: [model] hidden_units must be a list of integers (was list [64, 0.5])"}));
}

TEST(ReadChoices, PaddingAndActivationNamesAreCheckedWithASuggestion) {
  ParamTable params("[model]");
  params.set("padding", std::string("valid"), {"m.toml", 1});
  params.set("pool_padding", std::string("full"), {"m.toml", 2});
  params.set("activation", std::string("sigmod"), {"m.toml", 3});
  EXPECT_EQ(read_padding(params, "padding", Padding::same), Padding::valid);
  EXPECT_EQ(read_padding(params, "pool_padding", Padding::same), Padding::same);
  EXPECT_EQ(read_activation(params, "activation", Activation::tanh), Activation::tanh);
  EXPECT_EQ(params.problems(),
            (std::vector<std::string>{
                "m.toml:2: [model] pool_padding must be one of \"same\", \"valid\" (was \"full\")",
                "m.toml:3: [model] activation must be one of \"relu\", \"sigmoid\", \"tanh\" (was \"sigmod\"); did you "
                "mean \"sigmoid\"?"}));
}

ConvNetArchitecture two_blocks(Padding padding) {
  ConvNetArchitecture arch;
  arch.blocks = single_conv_blocks({4, 8}, 3, 2, padding, 2, padding);
  arch.hidden_units = {16};
  arch.dropout = {0.25};
  return arch;
}

TEST(ConvNet, ShapesFollowTheSizeMathsAndLogitsComeOut) {
  // 15x9, "same": conv/2 8x5, pool 4x3, conv/2 2x2, pool 1x1 -> 8 features.
  ParamTable params("[model]");
  auto network = build_conv_net(two_blocks(Padding::same), ModelSpec{3, 9, 15, 5}, params, "test");
  torch::NoGradGuard no_grad;
  network->eval();
  EXPECT_EQ(network->forward(torch::rand({2, 3, 9, 15})).sizes(), torch::IntArrayRef({2, 5}));
  int64_t count = 0;
  for (const auto& p : network->parameters()) count += p.numel();
  // conv 3->4 (3x3), conv 4->8, dense 8->16, dense 16->5.
  EXPECT_EQ(count, (27 * 4 + 4) + (36 * 8 + 8) + (8 * 16 + 16) + (16 * 5 + 5));
  EXPECT_TRUE(network->named_parameters().contains("layers.1.weight"));  // after the ZeroPad2d
}

TEST(ConvNet, StartsWithGlorotUniformKernelsAndZeroBiases) {
  ParamTable params("[model]");
  auto network = build_conv_net(two_blocks(Padding::same), ModelSpec{3, 32, 32, 4}, params, "test");
  for (const auto& item : network->named_parameters()) {
    const torch::Tensor& p = item.value();
    if (p.dim() == 1) {
      EXPECT_EQ(p.abs().max().item<double>(), 0.0) << item.key();
      continue;
    }
    int64_t receptive = p.dim() == 4 ? p.size(2) * p.size(3) : 1;
    double limit = std::sqrt(6.0 / double((p.size(0) + p.size(1)) * receptive));
    EXPECT_LE(p.abs().max().item<double>(), limit) << item.key();
  }
}

TEST(ConvNet, ALayerThatLeavesNothingIsRefusedNamingTheKeyAndSizes) {
  ParamTable params("[model]", {"m.toml", 1});
  params.set("kernel_size", int64_t{3}, {"m.toml", 4});
  params.get_int("kernel_size", 3);  // as the plugin would, so that the key is known
  try {
    build_conv_net(two_blocks(Padding::valid), ModelSpec{3, 6, 6, 4}, params, "test");
    FAIL() << "a 6x6 input cannot pass two valid blocks";
  } catch (const Error& e) {
    // conv/2 6 -> 2, pool 2 -> 1, conv 3x3 on 1x1 -> nothing.
    EXPECT_STREQ(e.what(),
                 "m.toml:4: [model] kernel_size 3 with strides 2 and padding \"valid\" shrinks a 6x6 input to 0x0 "
                 "after block 2; use padding \"same\", a smaller kernel or a larger image_size");
  }
  ConvNetArchitecture pooled;
  pooled.blocks = {ConvBlock{{}, 4, Padding::valid}};
  ParamTable pool_params("[model]");
  EXPECT_FALSE(check_shapes(pooled, ModelSpec{3, 3, 8, 4}, pool_params));
  EXPECT_EQ(pool_params.problems(),
            (std::vector<std::string>{"[model] pool_size 4 with pool_padding \"valid\" shrinks a 8x3 input to 2x0 "
                                      "after block 1; use pool_padding \"same\", a smaller pool_size or a larger "
                                      "image_size"}));
}

}  // namespace
}  // namespace bachlab::plugins
