// The frozen-feature cache: computed once, served from memory on the second epoch and
// from disk in the next run, recomputed when the weights file changes or a file is
// damaged, and augmentation handled by cached augmented copies or refused, never ignored.
#include "host/train/feature_cache.h"

#include "transfer_fixtures.h"

#include <gtest/gtest.h>
#include <unistd.h>

namespace {

using namespace transfer_test;
using bachlab::host::FeatureCache;
using bachlab::host::FeatureCacheSettings;
using bachlab::host::FeatureInputs;

class FeatureCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(7);
    torch::set_num_threads(2);
  }
  static std::shared_ptr<bachlab::sdk::Network> resnet(const std::string& weights) {
    return create("resnet50", 32, 4, {{"weights", weights}, {"hidden_units", int64_t{8}}});
  }
};

TEST_F(FeatureCacheTest, SecondEpochIsServedFromMemory) {
  REQUIRE_TORCHVISION();
  auto network = resnet(fixture("resnet50_seed7.pt"));
  FeatureCache cache;
  const torch::Tensor images = random_images(6, 32, 1);
  FeatureInputs inputs;
  inputs.batch_size = 4;
  network->train();
  torch::Tensor first = cache.training_features(*network, images, inputs, 1);
  EXPECT_EQ(cache.last_note(), "computed (no cache yet)");
  torch::Tensor second = cache.training_features(*network, images, inputs, 2);
  EXPECT_EQ(cache.last_note(), "memory");
  EXPECT_EQ(cache.stats().computed, 1);
  EXPECT_EQ(cache.stats().memory_hits, 1);
  EXPECT_EQ(cache.stats().images_computed, 6);
  EXPECT_TRUE(torch::equal(first, second));
  EXPECT_EQ(first.sizes(), (std::vector<int64_t>{6, 2048}));
  // The network is handed back in the mode it came in.
  EXPECT_TRUE(network->is_training());

  network->eval();
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::allclose(first, network->frozen_features()->extract_features(images.to(torch::kFloat32) / 255), 1e-5, 1e-5));
}

TEST_F(FeatureCacheTest, NextRunReadsTheDiskFileAndADamagedFileIsRecomputed) {
  REQUIRE_TORCHVISION();
  TempDir temp;
  auto network = resnet(fixture("resnet50_seed7.pt"));
  const torch::Tensor images = random_images(4, 32, 2);
  FeatureCacheSettings settings;
  settings.folder = temp.path() / "features";
  torch::Tensor computed = FeatureCache(settings).features(*network, images, {});

  FeatureCache next_run(settings);
  torch::Tensor loaded = next_run.features(*network, images, {});
  EXPECT_EQ(next_run.last_note(), "disk");
  EXPECT_EQ(next_run.stats().disk_hits, 1);
  EXPECT_EQ(next_run.stats().computed, 0);
  EXPECT_TRUE(torch::equal(computed, loaded));

  const auto file = next_run.cache_file(*network, images, {});
  std::ofstream(file, std::ios::trunc) << "damaged";
  FeatureCache after_damage(settings);
  torch::Tensor recomputed = after_damage.features(*network, images, {});
  EXPECT_EQ(after_damage.last_note().rfind("computed (cache was corrupt: " + file.string() + " (", 0), 0u)
      << after_damage.last_note();
  EXPECT_TRUE(torch::equal(computed, recomputed));
  EXPECT_EQ(FeatureCache(settings).features(*network, images, {}).size(0), 4);
}

TEST_F(FeatureCacheTest, TemporaryFilesOfKilledWritersAreRemovedWhenFeaturesAreWritten) {
  REQUIRE_TORCHVISION();
  TempDir temp;
  auto network = resnet(fixture("resnet50_seed7.pt"));
  FeatureCacheSettings settings;
  settings.folder = temp.path() / "features";
  fs::create_directories(settings.folder);
  // No process has pid 2^22+1 (Linux caps pids at 2^22): that writer was killed.
  const fs::path orphan = settings.folder / "abc.pt.4194305.0.tmp";
  const fs::path live = settings.folder / ("abc.pt." + std::to_string(::getpid()) + ".3.tmp");
  for (const auto& file : {orphan, live}) std::ofstream(file) << "partial";
  FeatureCache(settings).features(*network, random_images(2, 32, 5), {});
  EXPECT_FALSE(fs::exists(orphan));
  EXPECT_TRUE(fs::exists(live)) << "a running writer's temporary file was removed";
}

TEST_F(FeatureCacheTest, ChangedWeightsFileInvalidatesTheFeatures) {
  REQUIRE_TORCHVISION();
  TempDir temp;
  const std::string weights = temp.file("weights.pt");
  auto entries = read_dict(fixture("resnet50_seed7.pt"));
  write_dict(weights, entries);
  const torch::Tensor images = random_images(4, 32, 3);
  FeatureCacheSettings settings;
  settings.folder = temp.path() / "features";

  auto original = resnet(weights);
  torch::Tensor before = FeatureCache(settings).features(*original, images, {});

  // Same file name, same size, new content: as a re-export with other weights.
  for (auto& [name, tensor] : entries)
    if (name == "layer4.2.conv3.weight") tensor = tensor * 0.5;
  write_dict(weights, entries);
  auto changed = resnet(weights);
  EXPECT_NE(original->frozen_features()->features_cache_key(), changed->frozen_features()->features_cache_key());
  FeatureCache cache(settings);
  torch::Tensor after = cache.features(*changed, images, {});
  EXPECT_EQ(cache.last_note(), "computed (no cache yet)");
  EXPECT_EQ(cache.stats().computed, 1);
  EXPECT_FALSE(torch::allclose(before, after));
}

TEST_F(FeatureCacheTest, AugmentationWithoutCopiesIsRefused) {
  REQUIRE_TORCHVISION();
  auto network = resnet(fixture("resnet50_seed7.pt"));
  FeatureCacheSettings settings;
  settings.origin = "configs/vgg16_transfer.toml";
  FeatureCache cache(settings);
  FeatureInputs inputs;
  inputs.augmentations = {std::make_shared<Noise>(), std::make_shared<Noise>()};
  try {
    cache.training_features(*network, random_images(2, 32, 4), inputs, 1);
    FAIL() << "augmentation with a frozen backbone and no copies was accepted";
  } catch (const bachlab::Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "configs/vgg16_transfer.toml: [train.feature_cache] augmented_copies is 0, but 2 augmentations are "
              "configured and the model's backbone is frozen (mode = \"frozen\"), so cached features would never "
              "see an augmented image; set augmented_copies = 5 under [train.feature_cache] (each epoch then "
              "trains on one of 5 augmented copies, each computed once), or set mode = \"finetune\" in [model] to "
              "augment every batch afresh");
  }
}

TEST_F(FeatureCacheTest, EpochsCycleThroughAugmentedCopiesComputedOnceEach) {
  REQUIRE_TORCHVISION();
  auto network = resnet(fixture("resnet50_seed7.pt"));
  FeatureCacheSettings settings;
  settings.augmented_copies = 2;
  FeatureCache cache(settings);
  const torch::Tensor images = random_images(3, 32, 5);
  FeatureInputs inputs;
  inputs.augmentations = {std::make_shared<Noise>()};
  inputs.augmentations_key = "noise 0.05";
  inputs.seed = 11;
  torch::Tensor copy1 = cache.training_features(*network, images, inputs, 1);
  torch::Tensor copy2 = cache.training_features(*network, images, inputs, 2);
  torch::Tensor again1 = cache.training_features(*network, images, inputs, 3);
  torch::Tensor plain = cache.features(*network, images, inputs, 0);
  EXPECT_EQ(cache.stats().computed, 3);
  EXPECT_EQ(cache.stats().memory_hits, 1);
  EXPECT_TRUE(torch::equal(copy1, again1));
  EXPECT_FALSE(torch::allclose(copy1, copy2));
  EXPECT_FALSE(torch::allclose(copy1, plain));
  // A copy is a function of (seed, copy index) only, not of what was computed before.
  FeatureCache fresh(settings);
  EXPECT_TRUE(torch::equal(fresh.training_features(*network, images, inputs, 4), copy2));
}

TEST_F(FeatureCacheTest, FinetuneModelsAreNotCached) {
  auto network = create("resnet50", 32, 4, {{"pretrained", false}, {"mode", "finetune"}});
  FeatureCache cache;
  try {
    cache.features(*network, random_images(1, 32, 6), {});
    FAIL() << "a finetune model was cached";
  } catch (const bachlab::Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "the feature cache needs a model with a frozen feature extractor (frozen_features() is null); "
              "with mode = \"finetune\" every batch must go through the whole network, so train without the cache");
  }
}

}  // namespace
