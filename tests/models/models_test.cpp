// The handcrafted model plugins, loaded from the build's plugin folder exactly as the host
// loads them: shapes and parameter counts of the documented defaults (counted by hand
// below), Keras initialisation, the tuner's search space, and rejected settings.
#include "host/plugins/registry.h"

#include <bachlab/sdk/param_table.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <map>
#include <string>
#include <vector>

namespace {

using bachlab::Error;
using bachlab::host::PluginRegistry;
using bachlab::sdk::ModelSpec;
using bachlab::sdk::Origin;
using bachlab::sdk::ParamTable;
using bachlab::sdk::Scalar;
using bachlab::sdk::Value;

const std::vector<std::string> kModels = {"baseline", "model2", "model3a", "model3b", "model4a", "model4b"};
const char* kConfig = "configs/model.toml";

class ModelsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    registry_ = new PluginRegistry();
    for (const auto& name : kModels) {
      auto file = std::filesystem::path(BACHLAB_TEST_PLUGIN_DIR) / ("bachlab-model-" + name + ".so");
      if (!registry_->load(file)) FAIL() << registry_->rejections().back().reason;
    }
  }
  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
  }
  void SetUp() override { torch::manual_seed(20180101); }

  // A [model] table as the config loader makes it: each key on its own line, from line 2.
  static ParamTable table(const std::vector<std::pair<std::string, Value>>& entries) {
    ParamTable params("[model]", Origin{kConfig, 1});
    int line = 2;
    for (const auto& [key, value] : entries) params.set(key, value, Origin{kConfig, line++});
    return params;
  }

  static std::shared_ptr<bachlab::sdk::Network> create(const std::string& name, int64_t size,
                                                        const std::vector<std::pair<std::string, Value>>& entries = {}) {
    ParamTable params = table(entries);
    return registry_->create_model(name, ModelSpec{3, size, size, 4}, params);
  }

  // The message create() throws, or "" if it does not throw.
  static std::string error_of(const std::string& name, int64_t size,
                              const std::vector<std::pair<std::string, Value>>& entries) {
    try {
      create(name, size, entries);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  static int64_t count_parameters(torch::nn::Module& network) {
    int64_t total = 0;
    for (const auto& p : network.parameters()) total += p.numel();
    return total;
  }

  static PluginRegistry* registry_;
};

PluginRegistry* ModelsTest::registry_ = nullptr;

Value list(std::vector<Scalar> items) { return Value(std::move(items)); }

// conv(k, c_in, c_out) = k*k*c_in*c_out + c_out;  dense(in, out) = in*out + out.
constexpr int64_t conv(int64_t k, int64_t in, int64_t out) { return k * k * in * out + out; }
constexpr int64_t dense(int64_t in, int64_t out) { return in * out + out; }

// Model 2's convolutions, 5x5 with 32, 64, 128 filters:
// 2,432 + 51,264 + 204,928 = 258,624.
constexpr int64_t kModel2Convs = conv(5, 3, 32) + conv(5, 32, 64) + conv(5, 64, 128);
// At 224x224 ("same", stride 2, then 2x2 pooling): 224 -> 112 -> 56 | 56 -> 28 -> 14 |
// 14 -> 7 -> 4 (ceil), so 4*4*128 = 2,048 features; at 32x32: 32 -> 16 -> 8 | 8 -> 4 -> 2 |
// 2 -> 1 -> 1, so 128 features.
constexpr int64_t kModel2At224 = kModel2Convs + dense(2048, 128) + dense(128, 128) + dense(128, 4);
constexpr int64_t kModel2At32 = kModel2Convs + dense(128, 128) + dense(128, 128) + dense(128, 4);

struct Expected {
  std::string model;
  int64_t at32;
  int64_t at224;
};

const std::vector<Expected> kExpected = {
    // Baseline: 3x3 "valid" conv with 32 filters, 2x2 pooling, dense 64.
    // 224: 222 -> 111, 111*111*32 = 394,272 features: 896 + 25,233,472 + 260 = 25,234,628.
    // 32: 30 -> 15, 15*15*32 = 7,200 features: 896 + 460,864 + 260 = 462,020.
    {"baseline", conv(3, 3, 32) + dense(15 * 15 * 32, 64) + dense(64, 4),
     conv(3, 3, 32) + dense(111 * 111 * 32, 64) + dense(64, 4)},
    // Model 2: 292,164 at 32x32; 258,624 + 262,272 + 16,512 + 516 = 537,924 at 224x224.
    {"model2", kModel2At32, kModel2At224},
    // Model 3A: Model 2 plus two 5x5 128->128 stride-1 "same" convolutions in block 3,
    // which keep its size (7 at 224, 1 at 32): + 2 * 409,728 = 819,456.
    {"model3a", kModel2At32 + 2 * conv(5, 128, 128), kModel2At224 + 2 * conv(5, 128, 128)},
    // Model 3B: filters 64, 128, 256: 4,864 + 204,928 + 819,456 = 1,029,248 in convolutions;
    // 4*4*256 = 4,096 features at 224 (1,570,692 in all), 256 at 32 (1,079,172).
    {"model3b",
     conv(5, 3, 64) + conv(5, 64, 128) + conv(5, 128, 256) + dense(256, 128) + dense(128, 128) + dense(128, 4),
     conv(5, 3, 64) + conv(5, 64, 128) + conv(5, 128, 256) + dense(4096, 128) + dense(128, 128) + dense(128, 4)},
    // Models 4A and 4B: Model 2 plus dropout, which has no parameters.
    {"model4a", kModel2At32, kModel2At224},
    {"model4b", kModel2At32, kModel2At224},
};

// The "params 224" and "params 32" columns of docs/models.md's table, by model.
std::map<std::string, std::pair<int64_t, int64_t>> documented_parameter_counts() {
  std::ifstream in(std::string(BACHLAB_SOURCE_DIR) + "/docs/models.md");
  EXPECT_TRUE(in.good()) << "docs/models.md is missing";
  auto number = [](std::string text) {
    text.erase(std::remove(text.begin(), text.end(), ','), text.end());
    text.erase(std::remove(text.begin(), text.end(), ' '), text.end());
    return std::stoll(text);
  };
  std::map<std::string, std::pair<int64_t, int64_t>> out;
  for (std::string line; std::getline(in, line);) {
    // | model | layers | params 224 | params 128 | params 32 |
    std::vector<std::string> cells;
    std::stringstream row(line);
    for (std::string cell; std::getline(row, cell, '|');) cells.push_back(cell);
    if (cells.size() != 6 || line.rfind("| ", 0) != 0) continue;
    const std::string model = cells[1].substr(1, cells[1].find(' ', 1) - 1);
    if (cells[3].find_first_not_of("0123456789, ") != std::string::npos ||
        cells[5].find_first_not_of("0123456789, ") != std::string::npos)
      continue;
    out[model] = {number(cells[3]), number(cells[5])};
  }
  return out;
}

TEST_F(ModelsTest, HandCountedTotalsAreTheDocumentedOnes) {
  // The figures docs/models.md states, so the docs and the arithmetic above agree.
  const auto documented = documented_parameter_counts();
  for (const auto& expected : kExpected) {
    SCOPED_TRACE(expected.model);
    ASSERT_TRUE(documented.count(expected.model)) << "docs/models.md has no row for it";
    EXPECT_EQ(documented.at(expected.model).first, expected.at224);
    EXPECT_EQ(documented.at(expected.model).second, expected.at32);
  }
}

TEST_F(ModelsTest, DefaultsGiveLogitsAndTheHandCountedParametersAt32And224) {
  for (const auto& expected : kExpected) {
    for (int64_t size : {32, 224}) {
      SCOPED_TRACE(expected.model + " at " + std::to_string(size));
      auto network = create(expected.model, size);
      EXPECT_EQ(count_parameters(*network), size == 32 ? expected.at32 : expected.at224);
      network->eval();
      torch::NoGradGuard no_grad;
      auto logits = network->forward(torch::rand({2, 3, size, size}));
      EXPECT_EQ(logits.sizes(), torch::IntArrayRef({2, 4}));
      EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
    }
  }
}

TEST_F(ModelsTest, ParameterCountsAt128AreTheLayersCountedByHand) {
  // configs/base.toml trains at 128x128. Baseline: 126 -> 63, 63*63*32 = 127,008 features.
  EXPECT_EQ(count_parameters(*create("baseline", 128)), conv(3, 3, 32) + dense(127008, 64) + dense(64, 4));
  // Model 2 family: 128 -> 64 -> 32 | 32 -> 16 -> 8 | 8 -> 4 -> 2, so 2*2*128 = 512 features.
  int64_t model2 = kModel2Convs + dense(512, 128) + dense(128, 128) + dense(128, 4);
  for (const char* name : {"model2", "model4a", "model4b"}) EXPECT_EQ(count_parameters(*create(name, 128)), model2);
  // Model 3A: block 3's extra stride-1 convolutions keep 4x4, pooled to 2x2 as in Model 2.
  EXPECT_EQ(count_parameters(*create("model3a", 128)), model2 + 2 * conv(5, 128, 128));
  // Model 3B: 2*2*256 = 1,024 features.
  int64_t model3b = conv(5, 3, 64) + conv(5, 64, 128) + conv(5, 128, 256) + dense(1024, 128) + dense(128, 128) +
                    dense(128, 4);
  EXPECT_EQ(count_parameters(*create("model3b", 128)), model3b);
}

// docs/models.md's table of parameter counts (224, 128 and 32 pixels) is what the built
// networks have: the doc cannot drift from the code.
TEST_F(ModelsTest, TheParameterCountsInDocsModelsMdAreTheBuiltNetworks) {
  std::ifstream doc(std::string(BACHLAB_SOURCE_DIR) + "/docs/models.md");
  ASSERT_TRUE(doc) << "docs/models.md";
  std::map<std::string, std::vector<int64_t>> documented;
  for (std::string line; std::getline(doc, line);) {
    // | name | layers | params 224 | params 128 | params 32 |
    std::vector<std::string> cells;
    std::stringstream row(line);
    for (std::string cell; std::getline(row, cell, '|');) cells.push_back(cell);
    if (cells.size() != 6) continue;
    auto trim = [](std::string text) {
      text.erase(0, text.find_first_not_of(' '));
      text.erase(text.find_last_not_of(' ') + 1);
      return text;
    };
    const std::string name = trim(cells[1]);
    if (std::find(kModels.begin(), kModels.end(), name) == kModels.end()) continue;
    for (size_t c = 3; c <= 5; ++c) {
      std::string digits = trim(cells[c]);
      digits.erase(std::remove(digits.begin(), digits.end(), ','), digits.end());
      documented[name].push_back(std::stoll(digits));
    }
  }
  ASSERT_EQ(documented.size(), kModels.size()) << "a model's row is missing from docs/models.md";
  for (const auto& name : kModels) {
    SCOPED_TRACE(name);
    EXPECT_EQ(count_parameters(*create(name, 224)), documented[name][0]);
    EXPECT_EQ(count_parameters(*create(name, 128)), documented[name][1]);
    EXPECT_EQ(count_parameters(*create(name, 32)), documented[name][2]);
  }
}

TEST_F(ModelsTest, ForwardAndBackwardReachEveryParameter) {
  for (const auto& name : kModels) {
    SCOPED_TRACE(name);
    auto network = create(name, 32);
    network->train();
    auto loss = torch::nn::functional::cross_entropy(network->forward(torch::rand({4, 3, 32, 32})),
                                                     torch::tensor({0, 1, 2, 3}));
    loss.backward();
    for (const auto& p : network->parameters()) {
      ASSERT_TRUE(p.grad().defined());
      EXPECT_TRUE(torch::isfinite(p.grad()).all().item<bool>());
    }
    // A single trainable group "all" with every parameter: none of these models freezes anything.
    auto groups = network->parameter_groups();
    ASSERT_EQ(groups.size(), 1u);
    EXPECT_EQ(groups[0].parameters.size(), network->parameters().size());
  }
}

TEST_F(ModelsTest, NonSquareInputsAndOtherClassCountsWork) {
  ParamTable params = table({});
  auto network = registry_->create_model("model3a", ModelSpec{3, 48, 80, 7}, params);
  network->eval();
  torch::NoGradGuard no_grad;
  EXPECT_EQ(network->forward(torch::rand({3, 3, 48, 80})).sizes(), torch::IntArrayRef({3, 7}));
}

TEST_F(ModelsTest, WeightsStartAsInKerasGlorotUniformAndZeroBiases) {
  auto network = create("model2", 32);
  int convs = 0, denses = 0;
  for (const auto& module : network->modules(/*include_self=*/false)) {
    auto named = module->named_parameters(/*recurse=*/false);
    if (!named.contains("weight")) continue;
    auto weight = named["weight"];
    // Glorot: U(-l, l) with l = sqrt(6 / (fan_in + fan_out)), fans including the kernel area.
    int64_t receptive = weight.dim() == 4 ? weight.size(2) * weight.size(3) : 1;
    double limit = std::sqrt(6.0 / double(weight.size(1) * receptive + weight.size(0) * receptive));
    double largest = weight.abs().max().item<double>();
    EXPECT_LE(largest, limit);
    EXPECT_GT(largest, 0.9 * limit);  // thousands of draws come close to the bound
    EXPECT_EQ(named["bias"].abs().max().item<double>(), 0.0);
    (weight.dim() == 4 ? convs : denses)++;
  }
  EXPECT_EQ(convs, 3);
  EXPECT_EQ(denses, 3);
}

TEST_F(ModelsTest, SameSeedSameWeights) {
  torch::manual_seed(7);
  auto a = create("model4a", 32);
  torch::manual_seed(7);
  auto b = create("model4a", 32);
  torch::manual_seed(8);
  auto c = create("model4a", 32);
  auto pa = a->parameters(), pb = b->parameters(), pc = c->parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i]));
  EXPECT_FALSE(torch::equal(pa[0], pc[0]));
}

TEST_F(ModelsTest, DropoutSitsWhereTheStudyPutIt) {
  auto dropouts = [](torch::nn::Module& network) {
    std::vector<std::string> sequence;
    for (const auto& module : network.modules(false)) {
      // name() is the demangled Impl class, e.g. torch::nn::LinearImpl.
      if (module->name() == "torch::nn::LinearImpl") sequence.push_back("dense");
      if (module->name() == "torch::nn::DropoutImpl") sequence.push_back("dropout");
    }
    std::string text;
    for (const auto& s : sequence) text += (text.empty() ? "" : " ") + s;
    return text;
  };
  EXPECT_EQ(dropouts(*create("model2", 32)), "dense dense dense");
  EXPECT_EQ(dropouts(*create("model4a", 32)), "dense dense dropout dense");
  EXPECT_EQ(dropouts(*create("model4b", 32)), "dense dropout dense dropout dense");
  EXPECT_EQ(dropouts(*create("model4b", 32, {{"dropout", list({0.0, 0.3})}})), "dense dense dropout dense");

  // Dropout is active in training and off in evaluation.
  auto network = create("model4b", 32);
  auto images = torch::rand({4, 3, 32, 32});
  torch::NoGradGuard no_grad;
  network->train();
  EXPECT_FALSE(torch::equal(network->forward(images), network->forward(images)));
  network->eval();
  EXPECT_TRUE(torch::equal(network->forward(images), network->forward(images)));
}

TEST_F(ModelsTest, Model4aCoversTheStudysTunerSearchSpace) {
  // Every kernel size, stride, padding and activation the study's tuner tried, each end of
  // its filter and unit ranges among them. Shapes are computed, so at 96x96 every
  // combination runs but one, which must be refused rather than crash.
  for (int64_t kernel : {3, 5, 11})
    for (int64_t strides : {1, 2})
      for (const char* padding : {"same", "valid"})
        for (const char* activation : {"relu", "sigmoid"}) {
          std::vector<std::pair<std::string, Value>> settings = {{"filters", kernel == 3 && strides == 2 ? 256 : 32},
                                                                 {"kernel_size", kernel},
                                                                 {"strides", strides},
                                                                 {"padding", padding},
                                                                 {"hidden_units", kernel == 3 ? 512 : 64},
                                                                 {"activation", activation},
                                                                 {"dropout", 0.25}};
          SCOPED_TRACE(std::to_string(kernel) + "/" + std::to_string(strides) + "/" + padding + "/" + activation);
          if (kernel == 11 && strides == 2 && std::string(padding) == "valid") {
            // 96 -> 43 -> 22 | 22 -> 6 -> 3 | 3 < 11.
            EXPECT_EQ(error_of("model4a", 96, settings),
                      "configs/model.toml:3: [model] kernel_size 11 with strides 2 and padding \"valid\" shrinks a "
                      "96x96 input to 0x0 after block 3; use padding \"same\", a smaller kernel or a larger image_size");
            // At the study's 224x224 it fits: 224 -> 107 -> 54 | 54 -> 22 -> 11 | 11 -> 1 -> 1.
            auto network = create("model4a", 224, settings);
            torch::NoGradGuard no_grad;
            EXPECT_EQ(network->forward(torch::rand({1, 3, 224, 224})).sizes(), torch::IntArrayRef({1, 4}));
            continue;
          }
          auto network = create("model4a", 96, settings);
          network->eval();
          torch::NoGradGuard no_grad;
          EXPECT_EQ(network->forward(torch::rand({1, 3, 96, 96})).sizes(), torch::IntArrayRef({1, 4}));
        }
}

TEST_F(ModelsTest, PerLayerListsSetLayersSeparately) {
  // filters [8, 16, 24], hidden [20, 10] at 32x32 (final map 1x1x24):
  // 5*5*3*8+8 + 5*5*8*16+16 + 5*5*16*24+24 + 24*20+20 + 20*10+10 + 10*4+4 = 3,872 + 9,624 + 754.
  auto network = create("model2", 32, {{"filters", list({int64_t(8), int64_t(16), int64_t(24)})},
                                       {"hidden_units", list({int64_t(20), int64_t(10)})}});
  EXPECT_EQ(count_parameters(*network),
            conv(5, 3, 8) + conv(5, 8, 16) + conv(5, 16, 24) + dense(24, 20) + dense(20, 10) + dense(10, 4));
}

TEST_F(ModelsTest, AFewAdamStepsOnAFixedBatchLowerTheLoss) {
  auto network = create("model2", 32);
  network->train();
  auto images = torch::rand({16, 3, 32, 32});
  auto labels = torch::arange(16) % 4;
  torch::optim::Adam adam(network->parameters(), torch::optim::AdamOptions(1e-3));
  auto loss_now = [&] { return torch::nn::functional::cross_entropy(network->forward(images), labels); };
  double first = loss_now().item<double>();
  for (int step = 0; step < 30; ++step) {
    adam.zero_grad();
    auto loss = loss_now();
    loss.backward();
    adam.step();
  }
  EXPECT_LT(loss_now().item<double>(), 0.5 * first);
}

TEST_F(ModelsTest, ShrinkingBelowOnePixelNamesTheKeyAndTheSizes) {
  EXPECT_EQ(error_of("model4a", 32, {{"kernel_size", int64_t(11)}, {"strides", int64_t(2)}, {"padding", "valid"}}),
            "configs/model.toml:2: [model] kernel_size 11 with strides 2 and padding \"valid\" shrinks a 32x32 input "
            "to 0x0 after block 2; use padding \"same\", a smaller kernel or a larger image_size");
  EXPECT_EQ(error_of("model2", 32, {{"pool_padding", "valid"}}),
            "configs/model.toml:1: [model] pool_size 2 with pool_padding \"valid\" shrinks a 32x32 input to 0x0 "
            "after block 3; use pool_padding \"same\", a smaller pool_size or a larger image_size");
  EXPECT_EQ(error_of("model3a", 224, {{"padding", "valid"}}),
            "configs/model.toml:1: [model] kernel_size 5 with extra_strides 1 and padding \"valid\" shrinks a "
            "224x224 input to 0x0 after block 3; use padding \"same\", a smaller kernel or a larger image_size");
  EXPECT_EQ(error_of("baseline", 2, {}),
            "configs/model.toml:1: [model] kernel_size 3 with strides 1 and padding \"valid\" shrinks a 2x2 input to "
            "0x0 after block 1; use padding \"same\", a smaller kernel or a larger image_size");
}

TEST_F(ModelsTest, BadSettingsAreAllReportedWithFileLineAndFix) {
  EXPECT_EQ(error_of("model4a", 32, {{"filters", int64_t(0)}, {"padding", "full"}, {"activation", "sigmod"}}),
            "configs/model.toml:2: [model] filters must be in 1..4096 (was 0)\n"
            "configs/model.toml:3: [model] padding must be one of \"same\", \"valid\" (was \"full\")\n"
            "configs/model.toml:4: [model] activation must be one of \"relu\", \"sigmoid\", \"tanh\" (was \"sigmod\"); "
            "did you mean \"sigmoid\"?");
  EXPECT_EQ(error_of("model2", 32, {{"filters", list({int64_t(32), int64_t(64)})}}),
            "configs/model.toml:2: [model] filters must list 3 values, one per convolution (was [32, 64]); give 3 "
            "values or one integer for all");
  EXPECT_EQ(error_of("model4b", 32, {{"dropout", list({0.5, 0.5, 0.5})}}),
            "configs/model.toml:2: [model] dropout must list 2 values, one per dense hidden layer (was [0.5, 0.5, "
            "0.5]); give 2 values or one number for all");
  EXPECT_EQ(error_of("model4a", 32, {{"dropout", 1.0}}),
            "configs/model.toml:2: [model] dropout must be in 0.0..0.99 (was 1.0)");
  EXPECT_EQ(error_of("model4a", 32, {{"dropuot", 0.2}}),
            "configs/model.toml:2: [model] unknown key \"dropuot\"; did you mean \"dropout\"?");
  EXPECT_EQ(error_of("model2", 32, {{"dropout", 0.2}}),
            "configs/model.toml:2: [model] unknown key \"dropout\"; known keys: activation, filters, hidden_units, "
            "kernel_size, padding, pool_padding, pool_size, strides");
  EXPECT_EQ(error_of("baseline", 32, {{"filters", list({int64_t(32)})}}),
            "configs/model.toml:2: [model] filters must be an integer (was list [32])");
}

TEST_F(ModelsTest, ASpecWithoutClassesIsRefused) {
  ParamTable params = table({});
  try {
    registry_->create_model("model2", ModelSpec{3, 32, 32, 1}, params);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "model \"model2\": expected an input of at least 1 channel and 1x1 pixels and at least 2 classes, "
                 "found 3 channels, 32x32 pixels and 1 classes; check [data] image_size and the class list");
  }
}

}  // namespace
