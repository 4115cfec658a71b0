// The augmentation plugins, loaded from the build's plugin folder as the host loads them:
// each one's effect checked against an independent computation, reproducibility from the
// generator, and the contract every augmentation keeps (shape, dtype, range, input intact).
#include "host/plugins/registry.h"

#include <bachlab/sdk/param_table.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

namespace {

using bachlab::Error;
using bachlab::host::PluginRegistry;
using bachlab::sdk::Origin;
using bachlab::sdk::ParamTable;
using bachlab::sdk::Scalar;
using bachlab::sdk::Value;

using Entries = std::vector<std::pair<std::string, Value>>;

const std::vector<std::string> kAugmentations = {"flip", "rotate90", "affine", "color", "stain"};
const char* kConfig = "configs/aug.toml";
constexpr double kPi = 3.14159265358979323846;

torch::Generator generator(uint64_t seed) { return at::detail::createCPUGenerator(seed); }

class AugmentationsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    registry_ = new PluginRegistry();
    for (const auto& name : kAugmentations) {
      auto file = std::filesystem::path(BACHLAB_TEST_PLUGIN_DIR) / ("bachlab-augmentation-" + name + ".so");
      if (!registry_->load(file)) FAIL() << registry_->rejections().back().reason;
    }
  }
  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
  }
  void SetUp() override { torch::manual_seed(1536); }

  // An [[augment]] element as the config loader makes it: each key on its own line, from line 2.
  static std::shared_ptr<bachlab::sdk::Augmentation> create(const std::string& name, const Entries& entries = {}) {
    ParamTable params("[[augment]] #1", Origin{kConfig, 1});
    int line = 2;
    for (const auto& [key, value] : entries) params.set(key, value, Origin{kConfig, line++});
    return registry_->create_augmentation(name, params);
  }

  static std::string create_error(const std::string& name, const Entries& entries) {
    try {
      create(name, entries);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  static std::string apply_error(const std::string& name, const Entries& entries, const torch::Tensor& batch) {
    auto augmentation = create(name, entries);
    auto g = generator(1);
    try {
      augmentation->apply(batch, g);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  static torch::Tensor apply(const std::string& name, const Entries& entries, const torch::Tensor& batch,
                             uint64_t seed = 42) {
    auto g = generator(seed);
    return create(name, entries)->apply(batch, g);
  }

  static PluginRegistry* registry_;
};

PluginRegistry* AugmentationsTest::registry_ = nullptr;

Value ints(std::vector<Scalar> items) { return Value(std::move(items)); }

double max_difference(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

// Settings that make each augmentation change almost every image.
const std::vector<std::pair<std::string, Entries>> kActive = {
    {"flip", {{"vertical", true}}},
    {"rotate90", {}},
    {"affine", {{"rotation", 30.0}, {"zoom", 0.2}, {"width_shift", 0.1}, {"height_shift", 0.1}}},
    {"color", {}},
    {"stain", {{"scale", 0.2}, {"shift", 0.2}}},
};

TEST_F(AugmentationsTest, EveryAugmentationKeepsTheContract) {
  for (const auto& [name, entries] : kActive) {
    for (auto dtype : {torch::kFloat, torch::kDouble}) {
      SCOPED_TRACE(name + (dtype == torch::kFloat ? " float" : " double"));
      auto batch = torch::rand({8, 3, 24, 24}, dtype);
      auto before = batch.clone();
      auto first = apply(name, entries, batch, 5);
      EXPECT_TRUE(torch::equal(batch, before)) << "the input was modified";
      EXPECT_EQ(first.sizes(), batch.sizes());
      EXPECT_EQ(first.dtype(), batch.dtype());
      EXPECT_GE(first.min().item<double>(), 0.0);
      EXPECT_LE(first.max().item<double>(), 1.0);
      EXPECT_TRUE(torch::equal(first, apply(name, entries, batch, 5))) << "same seed, different result";
      EXPECT_FALSE(torch::equal(first, apply(name, entries, batch, 6))) << "different seed, same result";
      EXPECT_FALSE(torch::equal(first, batch)) << "did nothing";
      // The output is the caller's own: writing to it leaves the input alone.
      first.zero_();
      EXPECT_TRUE(torch::equal(batch, before));
    }
  }
}

TEST_F(AugmentationsTest, AnythingButAnImageBatchIsRefused) {
  EXPECT_EQ(apply_error("flip", {}, torch::rand({3, 8, 8})),
            "augmentation \"flip\": expected a floating-point batch of shape (N, C, H, W), found a float tensor of "
            "shape (3, 8, 8); augmentations run on decoded image batches, before the model");
  EXPECT_EQ(apply_error("affine", {}, torch::zeros({2, 3, 8, 8}, torch::kByte)),
            "augmentation \"affine\": expected a floating-point batch of shape (N, C, H, W), found an integer "
            "tensor of shape (2, 3, 8, 8); augmentations run on decoded image batches, before the model");
  EXPECT_EQ(apply_error("stain", {}, torch::rand({2, 1, 8, 8})),
            "augmentation \"stain\": expected 3 (RGB) channels, found a batch of shape (2, 1, 8, 8); use it only "
            "with colour images");
}

TEST_F(AugmentationsTest, ColourAugmentationsRefuseStandardisedBatches) {
  auto standardised = torch::linspace(-2, 2.5, 2 * 3 * 4 * 4).view({2, 3, 4, 4});
  EXPECT_EQ(apply_error("color", {}, standardised),
            "augmentation \"color\": expected pixel values in [0, 1], found values in [-2, 2.5]; it works on "
            "unit-range RGB images, so standardise after augmenting, not before");
  EXPECT_EQ(apply_error("stain", {}, standardised),
            "augmentation \"stain\": expected pixel values in [0, 1], found values in [-2, 2.5]; it works on "
            "unit-range RGB images, so standardise after augmenting, not before");
}

// ---- flip

TEST_F(AugmentationsTest, FlipFlips) {
  auto batch = torch::rand({4, 3, 5, 7});
  EXPECT_TRUE(torch::equal(apply("flip", {{"p", 1.0}}, batch), torch::flip(batch, {3})));
  EXPECT_TRUE(torch::equal(apply("flip", {{"horizontal", false}, {"vertical", true}, {"p", 1.0}}, batch),
                           torch::flip(batch, {2})));
  EXPECT_TRUE(torch::equal(apply("flip", {{"vertical", true}, {"p", 1.0}}, batch), torch::flip(batch, {2, 3})));
  EXPECT_TRUE(torch::equal(apply("flip", {{"vertical", true}, {"p", 0.0}}, batch), batch));
}

TEST_F(AugmentationsTest, FlipDecidesPerImage) {
  auto batch = torch::rand({64, 3, 4, 4});
  auto out = apply("flip", {}, batch);
  int flipped = 0;
  for (int64_t i = 0; i < 64; ++i) {
    bool same = torch::equal(out[i], batch[i]), mirrored = torch::equal(out[i], batch[i].flip({2}));
    EXPECT_TRUE(same != mirrored) << "image " << i;
    flipped += mirrored;
  }
  // p = 0.5 over 64 images: 32 +- 4 sd; 12..52 fails by chance less than once in 10^6.
  EXPECT_GT(flipped, 12);
  EXPECT_LT(flipped, 52);
}

TEST_F(AugmentationsTest, FlipSettingsAreChecked) {
  EXPECT_EQ(create_error("flip", {{"horizontal", false}}),
            "configs/aug.toml:2: [[augment]] #1 horizontal and vertical are both false, so flip would never change "
            "an image; set one of them to true or remove this [[augment]] entry");
  EXPECT_EQ(create_error("flip", {{"p", 1.5}}), "configs/aug.toml:2: [[augment]] #1 p must be in 0.0..1.0 (was 1.5)");
}

// ---- rotate90

TEST_F(AugmentationsTest, Rotate90MatchesTorchRot90) {
  auto batch = torch::rand({4, 3, 6, 6});
  for (int64_t angle : {0, 90, 180, 270})
    EXPECT_TRUE(torch::equal(apply("rotate90", {{"angles", ints({angle})}}, batch),
                             torch::rot90(batch, angle / 90, {2, 3})))
        << angle;
}

TEST_F(AugmentationsTest, Rotate90DrawsOneAnglePerImage) {
  auto batch = torch::rand({64, 3, 5, 5});
  auto out = apply("rotate90", {}, batch);
  std::vector<int> seen(4, 0);
  for (int64_t i = 0; i < 64; ++i) {
    int matches = 0;
    for (int k = 0; k < 4; ++k)
      if (torch::equal(out[i], torch::rot90(batch[i], k, {1, 2}))) ++seen[k], ++matches;
    EXPECT_EQ(matches, 1) << "image " << i;
  }
  for (int k = 0; k < 4; ++k) EXPECT_GT(seen[k], 4) << k * 90 << " degrees";  // 16 expected each
}

TEST_F(AugmentationsTest, Rotate90TurnsNonSquareImagesOnlyBy180) {
  auto batch = torch::rand({32, 3, 4, 6});
  auto out = apply("rotate90", {}, batch);
  int turned = 0;
  for (int64_t i = 0; i < 32; ++i) {
    bool same = torch::equal(out[i], batch[i]), half = torch::equal(out[i], torch::rot90(batch[i], 2, {1, 2}));
    EXPECT_TRUE(same || half) << "image " << i;
    turned += half;
  }
  EXPECT_GT(turned, 4);
  EXPECT_LT(turned, 28);
  EXPECT_EQ(apply_error("rotate90", {{"angles", ints({int64_t(90), int64_t(270)})}}, batch),
            "augmentation \"rotate90\": angles [90, 270] would turn a 6x4 batch on its side, which changes its "
            "shape; add 0 or 180 to angles or use a square image_size");
}

TEST_F(AugmentationsTest, Rotate90SettingsAreChecked) {
  EXPECT_EQ(create_error("rotate90", {{"angles", ints({int64_t(0), int64_t(45)})}}),
            "configs/aug.toml:2: [[augment]] #1 angles must list distinct multiples of 90 in 0..270 (was [0, 45]); "
            "use e.g. [0, 90, 180, 270]");
  EXPECT_EQ(create_error("rotate90", {{"angles", ints({int64_t(90), int64_t(90)})}}),
            "configs/aug.toml:2: [[augment]] #1 angles must list distinct multiples of 90 in 0..270 (was [90, 90]); "
            "use e.g. [0, 90, 180, 270]");
}

// ---- affine

TEST_F(AugmentationsTest, AffineWithZeroRangesIsTheIdentity) {
  auto batch = torch::rand({4, 3, 9, 13});
  for (const char* fill : {"reflect", "nearest", "constant"})
    EXPECT_LT(max_difference(apply("affine", {{"fill", fill}}, batch), batch), 1e-5) << fill;
}

// Bilinear sampling reproduces a linear image exactly, so on a ramp the output's slopes
// give the drawn transform back: the independent check of angle, zoom and shift.
struct Slopes {
  torch::Tensor along_w, along_h;  // per image, in input pixels per output pixel
  torch::Tensor offset;            // per image: output minus input at the centre pixel
};

Slopes ramp_slopes(const torch::Tensor& out, const torch::Tensor& ramp) {
  const int64_t h = out.size(2) / 2, w = out.size(3) / 2;
  auto plane = out.select(1, 0);
  return {plane.select(1, h).select(1, w + 1) - plane.select(1, h).select(1, w),
          plane.select(1, h + 1).select(1, w) - plane.select(1, h).select(1, w),
          plane.select(1, h).select(1, w) - ramp.select(1, 0).select(1, h).select(1, w)};
}

TEST_F(AugmentationsTest, AffineRotatesByAnAngleWithinTheRangeAtAnyAspectRatio) {
  // value = column index: rotating keeps the gradient's length 1 in pixels, also when the
  // image is not square, and turns it by the drawn angle.
  for (auto [height, width] : {std::pair<int64_t, int64_t>{33, 33}, {25, 41}}) {
    auto ramp = torch::arange(width, torch::kDouble).expand({16, 3, height, width}).contiguous();
    auto s = ramp_slopes(apply("affine", {{"rotation", 30.0}}, ramp), ramp);
    auto length = (s.along_w.square() + s.along_h.square()).sqrt();
    EXPECT_LT((length - 1).abs().max().item<double>(), 1e-6);
    auto degrees = torch::atan2(s.along_h, s.along_w) * (180 / kPi);
    EXPECT_LE(degrees.abs().max().item<double>(), 30.0 + 1e-6);
    EXPECT_GT(degrees.abs().max().item<double>(), 10.0);  // 16 draws from U(-30, 30)
  }
}

TEST_F(AugmentationsTest, AffineZoomsEachAxisWithinTheRange) {
  // value = column + 100 * row, read back as a zoom factor per axis.
  auto plane = torch::arange(33, torch::kDouble).view({1, 33}) + 100 * torch::arange(33, torch::kDouble).view({33, 1});
  auto image = plane.expand({16, 3, 33, 33}).contiguous();
  auto independent = ramp_slopes(apply("affine", {{"zoom", 0.3}}, image), image);
  auto zoom_x = independent.along_w, zoom_y = independent.along_h / 100;
  for (const auto& z : {zoom_x, zoom_y}) {
    EXPECT_GE(z.min().item<double>(), 0.7 - 1e-6);
    EXPECT_LE(z.max().item<double>(), 1.3 + 1e-6);
  }
  EXPECT_GT((zoom_x - zoom_y).abs().max().item<double>(), 0.01);  // Keras draws the axes apart
  auto kept = ramp_slopes(apply("affine", {{"zoom", 0.3}, {"keep_aspect", true}}, image), image);
  EXPECT_LT((kept.along_w - kept.along_h / 100).abs().max().item<double>(), 1e-6);
}

TEST_F(AugmentationsTest, AffineShiftsByAFractionOfTheSize) {
  // The same seed on a column ramp and on a row ramp reads the two shifts back in pixels.
  auto columns = torch::arange(40, torch::kDouble).view({1, 40}).expand({16, 3, 20, 40}).contiguous();
  auto rows = torch::arange(20, torch::kDouble).view({20, 1}).expand({16, 3, 20, 40}).contiguous();
  Entries shift = {{"width_shift", 0.25}, {"height_shift", 0.1}};
  auto along_columns = ramp_slopes(apply("affine", shift, columns, 9), columns);
  auto dx = along_columns.offset, dy = ramp_slopes(apply("affine", shift, rows, 9), rows).offset;
  EXPECT_LE(dx.abs().max().item<double>(), 0.25 * 40 + 1e-6);
  EXPECT_LE(dy.abs().max().item<double>(), 0.1 * 20 + 1e-6);
  EXPECT_GT(dx.abs().max().item<double>(), 3.0);  // 16 draws from U(-10, 10)
  EXPECT_GT(dy.abs().max().item<double>(), 0.6);  // 16 draws from U(-2, 2)
  EXPECT_LT((along_columns.along_w - 1).abs().max().item<double>(), 1e-6);  // a pure shift: the slope stays 1
}

TEST_F(AugmentationsTest, AffineFillsUncoveredPixelsAsConfigured) {
  auto flat = torch::full({16, 3, 16, 16}, 0.8);
  Entries far = {{"width_shift", 0.5}, {"height_shift", 0.5}};
  // A constant image stays constant when the border repeats it or mirrors it...
  for (const char* fill : {"reflect", "nearest"}) {
    Entries entries = far;
    entries.push_back({"fill", fill});
    EXPECT_LT(max_difference(apply("affine", entries, flat), flat), 1e-6) << fill;
  }
  // ...and shows cval where the shifted image no longer covers the output.
  Entries constant = far;
  constant.push_back({"fill", "constant"});
  constant.push_back({"cval", 0.25});
  auto out = apply("affine", constant, flat);
  EXPECT_GE(out.min().item<double>(), 0.25 - 1e-6);
  EXPECT_LE(out.max().item<double>(), 0.8 + 1e-6);
  EXPECT_GT((out - 0.25).abs().lt(1e-6).sum().item<int64_t>(), 16 * 3 * 16);  // whole rows/columns of cval
}

TEST_F(AugmentationsTest, AffineSettingsAreChecked) {
  EXPECT_EQ(create_error("affine", {{"fill", "wrap"}, {"rotation", 200.0}}),
            "configs/aug.toml:3: [[augment]] #1 rotation must be in 0.0..180.0 (was 200.0)\n"
            "configs/aug.toml:2: [[augment]] #1 fill must be one of \"reflect\", \"nearest\", \"constant\" (was "
            "\"wrap\")");
  EXPECT_EQ(create_error("affine", {{"cval", 0.5}}),
            "configs/aug.toml:2: [[augment]] #1 cval is only used with fill \"constant\" (fill is \"reflect\"); "
            "remove cval or set fill = \"constant\"");
}

// ---- color

TEST_F(AugmentationsTest, ColorWithZeroJitterIsTheIdentity) {
  auto batch = torch::rand({4, 3, 8, 8});
  Entries zero = {{"brightness", 0.0}, {"contrast", 0.0}, {"saturation", 0.0}, {"hue", 0.0}};
  EXPECT_TRUE(torch::equal(apply("color", zero, batch), batch));
}

TEST_F(AugmentationsTest, ColorBrightnessScalesEachImageByOneFactor) {
  auto batch = 0.1 + 0.5 * torch::rand({16, 3, 8, 8});  // stays below 1 even at factor 1.5
  auto out = apply("color", {{"brightness", 0.5}, {"contrast", 0.0}, {"saturation", 0.0}, {"hue", 0.0}}, batch);
  auto factor = out / batch;
  auto per_image = factor.flatten(1);
  EXPECT_LT((per_image - per_image.select(1, 0).unsqueeze(1)).abs().max().item<double>(), 1e-5);
  EXPECT_GE(per_image.min().item<double>(), 0.5 - 1e-5);
  EXPECT_LE(per_image.max().item<double>(), 1.5 + 1e-5);
}

TEST_F(AugmentationsTest, ColorContrastKeepsTheMeanGrey) {
  auto batch = 0.3 + 0.4 * torch::rand({16, 3, 8, 8});
  auto out = apply("color", {{"brightness", 0.0}, {"contrast", 0.5}, {"saturation", 0.0}, {"hue", 0.0}}, batch);
  auto grey_mean = [](const torch::Tensor& x) {
    return (0.299 * x.select(1, 0) + 0.587 * x.select(1, 1) + 0.114 * x.select(1, 2)).mean({1, 2});
  };
  EXPECT_LT((grey_mean(out) - grey_mean(batch)).abs().max().item<double>(), 1e-5);
  EXPECT_GT(max_difference(out, batch), 0.01);
}

TEST_F(AugmentationsTest, ColorSaturationAndHueKeepGreysGreyAndHueKeepsLuma) {
  auto level = torch::rand({16, 1, 8, 8});
  auto greys = level.expand({16, 3, 8, 8}).contiguous();
  Entries chroma = {{"brightness", 0.0}, {"contrast", 0.0}, {"saturation", 0.9}, {"hue", 0.5}};
  EXPECT_LT(max_difference(apply("color", chroma, greys), greys), 1e-5);

  // Muted colours, so that no rotation of their chroma leaves [0, 1] and gets clamped.
  auto colours = (greys * 0.5 + 0.25) + 0.05 * (torch::rand({16, 3, 8, 8}) - 0.5);
  auto out = apply("color", {{"brightness", 0.0}, {"contrast", 0.0}, {"saturation", 0.0}, {"hue", 0.5}}, colours);
  auto luma = [](const torch::Tensor& x) {
    return 0.299 * x.select(1, 0) + 0.587 * x.select(1, 1) + 0.114 * x.select(1, 2);
  };
  EXPECT_LT((luma(out) - luma(colours)).abs().max().item<double>(), 1e-5);
  EXPECT_GT(max_difference(out, colours), 0.005);
}

TEST_F(AugmentationsTest, ColorSettingsAreChecked) {
  EXPECT_EQ(create_error("color", {{"hue", 0.7}}), "configs/aug.toml:2: [[augment]] #1 hue must be in 0.0..0.5 (was 0.7)");
  EXPECT_EQ(create_error("color", {{"brightnes", 0.1}}),
            "configs/aug.toml:2: [[augment]] #1 unknown key \"brightnes\"; did you mean \"brightness\"?");
}

// ---- stain

// scikit-image's rgb_from_hed (Ruifrok & Johnston), typed here independently of the plugin.
torch::Tensor rgb_from_hed() {
  return torch::tensor({0.65, 0.70, 0.29, 0.07, 0.99, 0.11, 0.27, 0.57, 0.78}, torch::kDouble).view({3, 3});
}

// Per image (N, 3): the H, E, DAB amounts of the centre pixel.
torch::Tensor stains_at_centre(const torch::Tensor& batch) {
  auto pixel = batch.to(torch::kDouble).select(3, batch.size(3) / 2).select(2, batch.size(2) / 2);  // (N, 3)
  return torch::matmul(-pixel.clamp_min(1e-6).log(), torch::inverse(rgb_from_hed()));
}

TEST_F(AugmentationsTest, StainWithZeroJitterReconstructsTheInput) {
  auto batch = torch::rand({4, 3, 16, 16});
  EXPECT_LT(max_difference(apply("stain", {{"scale", 0.0}, {"shift", 0.0}}, batch), batch), 1e-3);
}

TEST_F(AugmentationsTest, StainScalesAndShiftsEachStainWithinItsRange) {
  // A pinkish-purple tissue colour with all three stain amounts well away from zero.
  auto tissue = torch::tensor({0.55, 0.35, 0.6}).view({1, 3, 1, 1}).expand({32, 3, 5, 5}).contiguous();
  auto before = stains_at_centre(tissue);
  auto scaled = stains_at_centre(apply("stain", {{"scale", 0.2}, {"shift", 0.0}}, tissue)) / before;
  EXPECT_GE(scaled.min().item<double>(), 0.8 - 1e-4);
  EXPECT_LE(scaled.max().item<double>(), 1.2 + 1e-4);
  EXPECT_GT((scaled - 1).abs().max().item<double>(), 0.1);
  auto shifted = stains_at_centre(apply("stain", {{"scale", 0.0}, {"shift", 0.1}}, tissue)) - before;
  EXPECT_LE(shifted.abs().max().item<double>(), 0.1 + 1e-4);
  EXPECT_GT(shifted.abs().max().item<double>(), 0.05);
  // Draws are per image and per stain: the 96 values are not all alike.
  EXPECT_GT(shifted.std().item<double>(), 0.02);
}

TEST_F(AugmentationsTest, StainScaleAloneLeavesWhiteBackgroundWhite) {
  auto white = torch::ones({8, 3, 4, 4});
  EXPECT_TRUE(torch::equal(apply("stain", {{"scale", 0.5}, {"shift", 0.0}}, white), white));
}

TEST_F(AugmentationsTest, StainSettingsAreChecked) {
  EXPECT_EQ(create_error("stain", {{"scale", -0.1}}),
            "configs/aug.toml:2: [[augment]] #1 scale must be in 0.0..1.0 (was -0.1)");
}

}  // namespace
