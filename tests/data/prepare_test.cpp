// Preparation and its cache: the tensors match preprocess_image(), a second run loads
// them without decoding, any change of a photo or a parameter rebuilds them, and a damaged
// cache file is detected and rebuilt, never trusted.
#include "host/data/image_tensor.h"
#include "host/data/parallel.h"
#include "host/data/prepare.h"
#include "host/data/synth_drawing.h"
#include "tests/data/fixtures.h"

#include <bachlab/sdk/error.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

namespace bachlab::host {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

class PrepareTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::make_bach_dataset(dir_.path(), 3, 48, 36);
    config_.root = dir_.path();
    config_.cache_dir = dir_ / "cache";
    config_.image_size = 16;
    config_.workers = 2;
    dataset_ = discover_dataset(config_);
  }

  // Replaces a photo's pixels but keeps its size and modification time, so only a decode
  // could notice the change.
  void replace_pixels_keeping_stat(const fs::path& file) {
    const auto mtime = fs::last_write_time(file);
    test::write_rgb_tiff(file, cv::Mat(36, 48, CV_8UC3, cv::Scalar(1, 2, 3)));
    fs::last_write_time(file, mtime);
  }

  TempDir dir_;
  DataConfig config_;
  Dataset dataset_;
};

TEST_F(PrepareTest, TensorsMatchPreprocessImage) {
  PreparedData prepared = prepare_dataset(dataset_, config_);
  EXPECT_FALSE(prepared.from_cache);
  EXPECT_EQ(prepared.cache_note, "no cache yet");
  ASSERT_EQ(prepared.images.sizes(), (std::vector<int64_t>{12, 3, 16, 16}));
  EXPECT_EQ(prepared.images.scalar_type(), torch::kUInt8);
  EXPECT_EQ(prepared.labels.scalar_type(), torch::kInt64);
  EXPECT_TRUE(torch::equal(prepared.labels, torch::tensor(dataset_.labels)));
  for (size_t i = 0; i < dataset_.files.size(); ++i)
    EXPECT_TRUE(torch::equal(prepared.images[int64_t(i)], preprocess_image(dataset_.files[i], 16))) << i;
  EXPECT_EQ(prepared.dataset.files, dataset_.files);
  EXPECT_TRUE(fs::exists(prepared.cache_file));
}

TEST_F(PrepareTest, SecondRunLoadsFromTheCacheWithoutDecoding) {
  PreparedData first = prepare_dataset(dataset_, config_);
  // Pixels changed behind the cache's back: a decode would see them, the cache does not.
  replace_pixels_keeping_stat(dataset_.files[0]);
  // The new file may differ in size; keep it equal so the key cannot notice.
  ASSERT_EQ(fs::file_size(dataset_.files[0]), fs::file_size(dataset_.files[1]));
  PreparedData second = prepare_dataset(dataset_, config_);
  EXPECT_TRUE(second.from_cache);
  EXPECT_EQ(second.cache_note, "loaded from cache");
  EXPECT_TRUE(torch::equal(first.images, second.images));
  EXPECT_TRUE(torch::equal(first.labels, second.labels));
  EXPECT_EQ(second.dataset.files, dataset_.files);
}

TEST_F(PrepareTest, ChangedPhotoInvalidatesTheCache) {
  prepare_dataset(dataset_, config_);
  const fs::path changed = dataset_.files[4];
  test::write_rgb_tiff(changed, cv::Mat(36, 48, CV_8UC3, cv::Scalar(9, 9, 9)));
  fs::last_write_time(changed, fs::last_write_time(changed) + std::chrono::seconds(5));
  PreparedData again = prepare_dataset(dataset_, config_);
  EXPECT_FALSE(again.from_cache);
  EXPECT_EQ(again.cache_note,
            "cache is stale: " + fs::absolute(changed).string() + " changed (size or modification time)");
  EXPECT_EQ(again.images[4].max().item<int>(), 9);
  EXPECT_TRUE(prepare_dataset(dataset_, config_).from_cache);
}

TEST_F(PrepareTest, ChangedParameterUsesAnotherCacheFile) {
  PreparedData small = prepare_dataset(dataset_, config_);
  config_.image_size = 8;
  PreparedData smaller = prepare_dataset(dataset_, config_);
  EXPECT_FALSE(smaller.from_cache);
  EXPECT_NE(small.cache_file, smaller.cache_file);
  EXPECT_EQ(smaller.images.size(2), 8);
  config_.on_bad_image = BadImages::skip;
  EXPECT_FALSE(prepare_dataset(dataset_, config_).from_cache);
  config_.on_bad_image = BadImages::error;
  config_.image_size = 16;
  EXPECT_TRUE(prepare_dataset(dataset_, config_).from_cache);
}

TEST_F(PrepareTest, CorruptCacheIsDetectedAndRebuilt) {
  PreparedData first = prepare_dataset(dataset_, config_);
  std::string bytes = test::read_bytes(first.cache_file);
  bytes[bytes.size() - 200] ^= 0x5a;  // inside the pixels
  test::write_bytes(first.cache_file, bytes);
  PreparedData second = prepare_dataset(dataset_, config_);
  EXPECT_FALSE(second.from_cache);
  EXPECT_THAT(second.cache_note, ::testing::MatchesRegex("cache was corrupt \\(checksum [0-9a-f]{8} expected, "
                                                         "[0-9a-f]{8} found\\); rebuilt it"));
  EXPECT_TRUE(torch::equal(first.images, second.images));
  EXPECT_TRUE(prepare_dataset(dataset_, config_).from_cache);
}

TEST_F(PrepareTest, TruncatedOrForeignCacheIsRebuilt) {
  PreparedData first = prepare_dataset(dataset_, config_);
  const std::string bytes = test::read_bytes(first.cache_file);
  test::write_bytes(first.cache_file, bytes.substr(0, bytes.size() / 2));
  PreparedData cut = prepare_dataset(dataset_, config_);
  EXPECT_FALSE(cut.from_cache);
  EXPECT_EQ(cut.cache_note, "cache was corrupt (it is truncated); rebuilt it");

  test::write_bytes(first.cache_file, "not a cache at all");
  PreparedData foreign = prepare_dataset(dataset_, config_);
  EXPECT_FALSE(foreign.from_cache);
  EXPECT_EQ(foreign.cache_note, "cache was corrupt (it does not start with the bachlab cache header); rebuilt it");

  test::write_bytes(first.cache_file, bytes + "extra");
  PreparedData longer = prepare_dataset(dataset_, config_);
  EXPECT_FALSE(longer.from_cache);
  EXPECT_EQ(longer.cache_note, "cache was corrupt (its end marker is wrong); rebuilt it");
  EXPECT_TRUE(torch::equal(first.images, longer.images));
}

TEST_F(PrepareTest, UndecodablePhotoStopsTheRunListingIt) {
  const fs::path bad = dataset_.files[5];
  const std::string bytes = test::read_bytes(bad);
  test::write_bytes(bad, bytes.substr(0, bytes.size() / 2));
  const std::string message = error_of([&] { prepare_dataset(dataset_, config_); });
  EXPECT_THAT(message, ::testing::StartsWith("1 of 12 photos cannot be used:\n- " + bad.string() +
                                             ": corrupt or truncated TIFF: "));
  EXPECT_THAT(message, ::testing::EndsWith("\nfix or remove these files, or set [data] on_bad_image = \"skip\" to "
                                           "leave them out"));
}

TEST_F(PrepareTest, UndecodablePhotoIsSkippedAndListedAlsoFromTheCache) {
  const fs::path bad = dataset_.files[5];
  const std::string bytes = test::read_bytes(bad);
  test::write_bytes(bad, bytes.substr(0, bytes.size() / 2));
  config_.on_bad_image = BadImages::skip;
  for (bool cached : {false, true}) {
    PreparedData prepared = prepare_dataset(dataset_, config_);
    EXPECT_EQ(prepared.from_cache, cached);
    EXPECT_EQ(prepared.images.size(0), 11);
    EXPECT_EQ(prepared.dataset.files.size(), 11u);
    EXPECT_EQ(std::count(prepared.dataset.files.begin(), prepared.dataset.files.end(), bad), 0);
    ASSERT_EQ(prepared.dataset.skipped.size(), 1u);
    EXPECT_THAT(prepared.dataset.skipped[0], ::testing::StartsWith(bad.string() + ": corrupt or truncated TIFF: "));
    EXPECT_TRUE(torch::equal(prepared.labels, torch::tensor(prepared.dataset.labels)));
  }
}

TEST_F(PrepareTest, UnwritableCacheStillPrepares) {
  test::write_bytes(dir_ / "blocker", "a file where the cache folder should be");
  config_.cache_dir = dir_ / "blocker";
  PreparedData prepared = prepare_dataset(dataset_, config_);
  EXPECT_FALSE(prepared.from_cache);
  EXPECT_TRUE(prepared.cache_file.empty());
  EXPECT_THAT(prepared.cache_note, ::testing::StartsWith("no cache yet; cache not written: cannot create "));
  EXPECT_EQ(prepared.images.size(0), 12);
}

// ---- [data] scale ------------------------------------------------------------------------

TEST_F(PrepareTest, ScaleKeepsTheAspectRatioWithAreaInterpolation) {
  config_.scale = 0.5;
  PreparedData prepared = prepare_dataset(dataset_, config_);
  // 48x36 photos at 0.5: 24 wide, 18 high, not squeezed to a square.
  ASSERT_EQ(prepared.images.sizes(), (std::vector<int64_t>{12, 3, 18, 24}));
  EXPECT_TRUE(prepared.images.is_contiguous());
  EXPECT_THAT(prepared.cache_file.filename().string(), ::testing::EndsWith("-scale0.5.bin"));
  for (size_t i = 0; i < dataset_.files.size(); ++i) {
    cv::Mat small;
    cv::resize(load_image_rgb(dataset_.files[i]), small, cv::Size(24, 18), 0, 0, cv::INTER_AREA);
    torch::Tensor expected = torch::empty({3, 18, 24}, torch::kUInt8);
    copy_to_chw(small, expected);
    EXPECT_TRUE(torch::equal(prepared.images[int64_t(i)], expected)) << i;
    EXPECT_TRUE(torch::equal(preprocess_photo(dataset_.files[i], config_), expected)) << i;
  }
  PreparedData again = prepare_dataset(dataset_, config_);
  EXPECT_TRUE(again.from_cache);
  EXPECT_TRUE(torch::equal(prepared.images, again.images));
  // The square resize is another set with another file.
  config_.scale = 0;
  EXPECT_NE(prepare_dataset(dataset_, config_).cache_file, prepared.cache_file);
}

TEST_F(PrepareTest, ScaleRefusesAPhotoOfAnotherSizeOrSkipsIt) {
  const fs::path odd = dataset_.files[7];
  test::write_rgb_tiff(odd, test::class_image(1, 9, 40, 30));
  config_.scale = 0.5;
  const std::string message = error_of([&] { prepare_dataset(dataset_, config_); });
  EXPECT_THAT(message, ::testing::HasSubstr(
                           "\n- " + odd.string() + ": is 40x30, which at [data] scale = 0.5 gives 20x15, but " +
                           dataset_.files[0].string() + " gives 24x18; all photos of a set must share one size at a "
                           "scale (resize or remove this photo, or use image_size instead of scale)"));
  config_.on_bad_image = BadImages::skip;
  PreparedData prepared = prepare_dataset(dataset_, config_);
  EXPECT_EQ(prepared.images.size(0), 11);
  ASSERT_EQ(prepared.dataset.skipped.size(), 1u);
  EXPECT_THAT(prepared.dataset.skipped[0], ::testing::StartsWith(odd.string() + ": is 40x30"));
}

// ---- [data] stain_normalize ---------------------------------------------------------------

class StainPrepareTest : public PrepareTest {
 protected:
  void SetUp() override {
    PrepareTest::SetUp();
    // Tissue instead of the fixture's flat colours, each photo stained its own way.
    for (size_t i = 0; i < dataset_.files.size(); ++i)
      test::write_rgb_tiff(dataset_.files[i], draw_synthetic_image(int(i % 4), 48, 36, 100 + i));
    config_.stain_normalize = StainMethod::macenko;
    unnormalised_ = config_;
    unnormalised_.stain_normalize = StainMethod::none;
  }
  DataConfig unnormalised_;
};

TEST_F(StainPrepareTest, NeedsATargetOrAReference) {
  EXPECT_EQ(error_of([&] { prepare_dataset(dataset_, config_); }),
            "prepare_dataset: [data] stain_normalize = \"macenko\" without stain_reference fits its target on the "
            "training photos, and none was given; prepare with stain_normalize = \"none\", fit the target on the "
            "training rows with fit_stain_target() and pass it (bachlab run does this for each split and fold), or "
            "set stain_reference");
  const PreparedData plain = prepare_dataset(dataset_, unnormalised_);
  const StainTarget reinhard = fit_stain_target(StainMethod::reinhard, plain.images, {0, 1});
  EXPECT_THAT(error_of([&] { prepare_dataset(dataset_, config_, reinhard); }),
              ::testing::StartsWith("prepare_dataset: the stain target was fitted for \"reinhard\" but [data] "
                                    "stain_normalize = \"macenko\""));
}

TEST_F(StainPrepareTest, EachTargetIsItsOwnCacheBuiltFromTheUnnormalisedSet) {
  const PreparedData plain = prepare_dataset(dataset_, unnormalised_);
  const StainTarget a = fit_stain_target(StainMethod::macenko, plain.images, {0, 1, 2, 3});
  const StainTarget b = fit_stain_target(StainMethod::macenko, plain.images, {4, 5, 6, 7});
  ASSERT_NE(a.key(), b.key());
  const PreparedData with_a = prepare_dataset(dataset_, config_, a);
  EXPECT_FALSE(with_a.from_cache);
  ASSERT_TRUE(with_a.stain_target.has_value());
  EXPECT_EQ(with_a.stain_target->key(), a.key());
  EXPECT_THAT(with_a.cache_file.filename().string(), ::testing::EndsWith("-16px-macenko.bin"));
  for (int64_t i = 0; i < 12; ++i) {
    torch::Tensor expected = plain.images[i].clone();
    normalize_stain_chw(expected, a);
    EXPECT_TRUE(torch::equal(with_a.images[i], expected)) << i;
    EXPECT_TRUE(torch::equal(preprocess_photo(dataset_.files[size_t(i)], config_, a), expected)) << i;
  }
  EXPECT_FALSE(torch::equal(with_a.images, plain.images));
  const PreparedData with_b = prepare_dataset(dataset_, config_, b);
  EXPECT_FALSE(with_b.from_cache);
  EXPECT_NE(with_b.cache_file, with_a.cache_file);
  EXPECT_FALSE(torch::equal(with_a.images, with_b.images));
  const PreparedData again = prepare_dataset(dataset_, config_, a);
  EXPECT_TRUE(again.from_cache);
  EXPECT_TRUE(torch::equal(again.images, with_a.images));
  EXPECT_EQ(again.stain_target->key(), a.key());
}

TEST_F(StainPrepareTest, ReferencePhotoGivesTheTargetWithoutTrainingPhotos) {
  config_.stain_reference = dataset_.files[3];
  const PreparedData prepared = prepare_dataset(dataset_, config_);
  ASSERT_TRUE(prepared.stain_target.has_value());
  EXPECT_EQ(prepared.stain_target->fitted_on, "reference photo " + dataset_.files[3].string());
  EXPECT_EQ(prepared.stain_target->key(), fit_stain_reference(config_).key());
  config_.stain_reference = dir_ / "missing.tif";
  EXPECT_THAT(error_of([&] { prepare_dataset(dataset_, config_); }),
              ::testing::StartsWith("[data] stain_reference = \"" + (dir_ / "missing.tif").string() + "\": "));
}

TEST_F(StainPrepareTest, BlankPhotoIsKeptAsItWasAndCounted) {
  test::write_rgb_tiff(dataset_.files[2], cv::Mat(36, 48, CV_8UC3, cv::Scalar(255, 255, 255)));
  const PreparedData plain = prepare_dataset(dataset_, unnormalised_);
  const PreparedData prepared = prepare_dataset(dataset_, config_, fit_stain_target(StainMethod::macenko, plain.images, {0, 1}));
  EXPECT_TRUE(prepared.images[2].eq(255).all().item<bool>());
  EXPECT_EQ(prepared.cache_note, "no cache yet; stain normalisation left 1 photo with too little tissue as it was");
}

TEST(NormalizationTest, UnitLeavesPixelsInZeroToOne) {
  DataConfig config;
  torch::Tensor images = torch::tensor({0, 51, 255, 102}, torch::kUInt8).view({1, 1, 2, 2}).repeat({2, 3, 1, 1});
  Normalization n = fit_normalization(images, config);
  EXPECT_EQ(n.mean, (std::array<float, 3>{0.f, 0.f, 0.f}));
  EXPECT_EQ(n.std, (std::array<float, 3>{1.f, 1.f, 1.f}));
  torch::Tensor floats = to_float_batch(images, n);
  EXPECT_EQ(floats.scalar_type(), torch::kFloat32);
  EXPECT_FLOAT_EQ(floats[0][0][0][1].item<float>(), 0.2f);
  EXPECT_FLOAT_EQ(floats[1][2][1][0].item<float>(), 1.0f);
}

TEST(NormalizationTest, StandardizeUsesExactPerChannelStatistics) {
  DataConfig config;
  config.normalize = InputScaling::standardize;
  torch::manual_seed(3);
  torch::Tensor images = torch::randint(0, 256, {5, 3, 7, 9}, torch::kUInt8);
  images.select(1, 2).fill_(77);  // a constant channel must not divide by zero
  Normalization n = fit_normalization(images, config);
  torch::Tensor unit = images.to(torch::kFloat64) / 255.0;
  for (int c = 0; c < 2; ++c) {
    torch::Tensor channel = unit.select(1, c);
    EXPECT_NEAR(n.mean[size_t(c)], channel.mean().item<double>(), 1e-6);
    EXPECT_NEAR(n.std[size_t(c)], channel.std(/*unbiased=*/false).item<double>(), 1e-6);
  }
  EXPECT_NEAR(n.mean[2], 77 / 255.0, 1e-6);
  EXPECT_EQ(n.std[2], 1.f);
  torch::Tensor standardized = to_float_batch(images, n);
  EXPECT_NEAR(standardized.select(1, 0).mean().item<double>(), 0.0, 1e-5);
  EXPECT_NEAR(standardized.select(1, 1).std(false).item<double>(), 1.0, 1e-4);
}

TEST(NormalizationTest, RejectsWrongTensors) {
  DataConfig config;
  config.normalize = InputScaling::standardize;
  EXPECT_EQ(error_of([&] { fit_normalization(torch::zeros({2, 3, 4, 4}), config); }),
            "fit_normalization: expected uint8 images of shape (N, 3, H, W) (was Float [2, 3, 4, 4])");
  EXPECT_EQ(error_of([&] { to_float_batch(torch::zeros({3, 4, 4}, torch::kUInt8), Normalization{}); }),
            "to_float_batch: expected uint8 images of shape (N, 3, H, W) (was Byte [3, 4, 4])");
}

TEST(NormalizationTest, OneHotRows) {
  torch::Tensor one_hot = one_hot_labels(torch::tensor({2, 0}, torch::kInt64), 4);
  EXPECT_TRUE(torch::equal(one_hot, torch::tensor({{0.f, 0.f, 1.f, 0.f}, {1.f, 0.f, 0.f, 0.f}})));
}

// The progress line every long step draws on a terminal: done, bar, rate and the time left
// at the rate so far; when done, the time it took.
TEST(ProgressLine, SaysHowMuchIsDoneAndHowLongTheRestTakes) {
  EXPECT_EQ(progress_line("decoding photos", 100, 400, 20.0, false),
            "decoding photos 100/400 [######..................]  25% 5.0/s ETA 1m00s");
  EXPECT_EQ(progress_line("decoding photos", 0, 400, 0.5, false),
            "decoding photos 0/400 [........................]   0% 0.0/s");
  EXPECT_EQ(progress_line("decoding photos", 400, 400, 80.0, true),
            "decoding photos 400/400 [########################] 100% 5.0/s in 1m20s");
}

}  // namespace
}  // namespace bachlab::host
