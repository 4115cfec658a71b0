// The feature cache wired into training: the Trainer runs a frozen backbone once per image
// (per augmented copy) and every later epoch, validation and prediction only the head;
// `bachlab run` keeps the features on disk under [data] cache_dir, a second run of the
// same experiment reads them back and gets the same numbers, a changed weights file
// computes them again, and augmentation with a frozen backbone is settled at check time.
#include "host/train/checkpoints.h"
#include "host/train/experiment.h"
#include "host/train/runner.h"
#include "host/train/trainer.h"
#include "tests/train/batch_hook.h"
#include "host/util/atomic_file.h"

#include "transfer_fixtures.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <unistd.h>

namespace {

using namespace transfer_test;
using bachlab::host::FeatureCacheStats;
using bachlab::host::RunSummary;
using bachlab::host::TensorSplit;
using bachlab::host::Trainer;
using bachlab::host::TrainerParts;
using bachlab::host::TrainSettings;

// Passes everything to a plugin's network and counts what reaches it, so a test sees
// whether the backbone ran (extract_features, or forward, which runs it too).
class Counting : public bachlab::sdk::Network, public bachlab::sdk::FrozenFeatures {
 public:
  explicit Counting(std::shared_ptr<bachlab::sdk::Network> inner) : inner_(register_module("inner", std::move(inner))) {}
  torch::Tensor forward(torch::Tensor images) override {
    forward_images += images.size(0);
    return inner_->forward(images);
  }
  bachlab::sdk::FrozenFeatures* frozen_features() override { return inner_->frozen_features() ? this : nullptr; }
  torch::Tensor extract_features(torch::Tensor images) override {
    extracted_images += images.size(0);
    return inner_->frozen_features()->extract_features(images);
  }
  torch::Tensor head(torch::Tensor features) override { return inner_->frozen_features()->head(features); }
  std::string features_cache_key() const override { return inner_->frozen_features()->features_cache_key(); }
  std::vector<bachlab::sdk::ParameterGroup> parameter_groups() override { return inner_->parameter_groups(); }
  torch::Tensor regularization() override { return inner_->regularization(); }

  int64_t forward_images = 0;
  int64_t extracted_images = 0;

 private:
  std::shared_ptr<bachlab::sdk::Network> inner_;
};

TrainerParts head_parts(const std::shared_ptr<bachlab::sdk::Network>& network) {
  std::vector<torch::Tensor> trainable;
  for (const auto& g : network->parameter_groups())
    if (g.trainable) trainable.insert(trainable.end(), g.parameters.begin(), g.parameters.end());
  TrainerParts parts;
  parts.model = network;
  parts.optimizer = std::make_shared<torch::optim::Adam>(trainable, torch::optim::AdamOptions(1e-3));
  return parts;
}

TrainSettings few_epochs(int64_t epochs) {
  TrainSettings settings;
  settings.epochs = epochs;
  settings.batch_size = 4;
  settings.threads = 2;
  return settings;
}

TensorSplit split(int64_t n, uint64_t seed) { return {random_images(n, 32, seed), torch::arange(n) % 4}; }

class TrainerCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(7);
    torch::set_num_threads(2);
  }
  static std::shared_ptr<Counting> counting_resnet() {
    return std::make_shared<Counting>(
        create("resnet50", 32, 4, {{"weights", fixture("resnet50_seed7.pt")}, {"hidden_units", int64_t{8}}}));
  }
};

TEST_F(TrainerCacheTest, BackboneRunsOncePerImageThenOnlyTheHeadTrains) {
  REQUIRE_TORCHVISION();
  auto network = counting_resnet();
  Trainer trainer(head_parts(network), few_epochs(3), 5);
  const TensorSplit train = split(8, 1), val = split(4, 2);
  const auto outcome = trainer.fit(train, val);
  ASSERT_EQ(outcome.history.size(), 3u);

  // Each training and validation image went through the backbone once, in epoch 1;
  // forward() (the whole network) never ran.
  EXPECT_EQ(network->extracted_images, 8 + 4);
  EXPECT_EQ(network->forward_images, 0);
  const FeatureCacheStats& stats = trainer.feature_cache_stats();
  EXPECT_EQ(stats.computed, 2);
  EXPECT_EQ(stats.memory_hits, 4);  // epochs 2 and 3, training and validation
  EXPECT_EQ(stats.disk_hits, 0);    // TrainSettings made in code: memory only

  // Predicting the validation split again: still no backbone pass.
  trainer.predict(val);
  EXPECT_EQ(network->extracted_images, 12);
  EXPECT_EQ(trainer.feature_cache_stats().memory_hits, 5);
}

struct Interrupted {};

// The same network, as if built from another weights file.
class OtherWeights : public Counting {
 public:
  using Counting::Counting;
  std::string features_cache_key() const override { return "resnet50 weights /elsewhere/resnet50_other.pt"; }
};

// A frozen backbone's checkpoints hold what trains and the identity of the weights file the
// backbone came from, not the backbone: a resumed run still ends with the numbers of an
// uninterrupted one, and a model whose frozen part came from another file is refused.
TEST_F(TrainerCacheTest, FrozenBackboneCheckpointsHoldTheHeadAndTheWeightsIdentity) {
  REQUIRE_TORCHVISION();
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("bachlab_frozen_checkpoint_test_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const TensorSplit train = split(8, 1), val = split(4, 2), test = split(6, 3);
  auto network = [] {
    torch::manual_seed(7);
    return counting_resnet();
  };
  Trainer reference(head_parts(network()), few_epochs(3), 5);
  const auto expected = reference.fit(train, val);
  const torch::Tensor expected_test = reference.predict(test).probabilities;
  {
    Trainer first(head_parts(network()), few_epochs(3), 5);
    first.set_checkpoint_dir(dir);
    bachlab::host::testing::add_batch_hook(first, [](int64_t epoch, int64_t) {
      if (epoch == 2) throw Interrupted{};
    });
    EXPECT_THROW(first.fit(train, val), Interrupted);
  }
  // The head, the backbone's batch-norm statistics and Adam's state: far from ResNet50's 100 MB.
  EXPECT_LT(std::filesystem::file_size(dir / "last.pt"), 2'000'000u);

  Trainer second(head_parts(network()), few_epochs(3), 5);
  second.set_checkpoint_dir(dir);
  ASSERT_TRUE(second.resume());
  const auto resumed = second.fit(train, val);
  ASSERT_EQ(resumed.history.size(), expected.history.size());
  for (size_t i = 0; i < expected.history.size(); ++i) {
    EXPECT_EQ(resumed.history[i].train.loss, expected.history[i].train.loss) << "epoch " << i + 1;
    EXPECT_EQ(resumed.history[i].val.loss, expected.history[i].val.loss) << "epoch " << i + 1;
  }
  EXPECT_TRUE(torch::equal(second.predict(test).probabilities, expected_test));

  torch::manual_seed(7);
  auto other = std::make_shared<OtherWeights>(
      create("resnet50", 32, 4, {{"weights", fixture("resnet50_seed7.pt")}, {"hidden_units", int64_t{8}}}));
  Trainer third(head_parts(other), few_epochs(3), 5);
  third.set_checkpoint_dir(dir);
  try {
    third.resume();
    FAIL() << "a checkpoint trained on other frozen weights was loaded";
  } catch (const bachlab::Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind((dir / "best.pt").string() + ": this checkpoint holds only the trained part of the model; "
                            "its frozen part came from the weights in \"resnet50 weights " + fixture("resnet50_seed7.pt"),
                            0),
              0u)
        << message;
    EXPECT_NE(message.find("but the model built from the config now has \"resnet50 weights "
                           "/elsewhere/resnet50_other.pt\". The weights file changed since the run was trained; put "
                           "the original file back, or start a new run"),
              std::string::npos)
        << message;
  }
  std::filesystem::remove_all(dir);
}

TEST_F(TrainerCacheTest, HeadOnCachedFeaturesPredictsWhatTheWholeNetworkPredicts) {
  REQUIRE_TORCHVISION();
  auto network = counting_resnet();
  Trainer trainer(head_parts(network), few_epochs(2), 5);
  const TensorSplit train = split(8, 1), test = split(6, 3);
  trainer.fit(train, {});
  const torch::Tensor cached = trainer.predict(test).probabilities;

  network->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor whole = torch::softmax(network->forward(test.images.to(torch::kFloat32) / 255), 1);
  EXPECT_TRUE(torch::allclose(cached, whole, 1e-5, 1e-6)) << cached << whole;
}

TEST_F(TrainerCacheTest, AugmentedCopiesAreComputedOnceEachAndCycled) {
  REQUIRE_TORCHVISION();
  auto network = counting_resnet();
  TrainerParts parts = head_parts(network);
  parts.augmentations = {std::make_shared<Noise>()};
  parts.augmentations_key = "noise 0.05";
  TrainSettings settings = few_epochs(5);
  settings.feature_cache.augmented_copies = 2;
  Trainer trainer(parts, settings, 5);
  trainer.fit(split(8, 1), {});
  // Copies 1 and 2 once each (epochs 1 and 2), then epochs 3, 4, 5 from memory.
  EXPECT_EQ(network->extracted_images, 2 * 8);
  EXPECT_EQ(network->forward_images, 0);
  EXPECT_EQ(trainer.feature_cache_stats().computed, 2);
  EXPECT_EQ(trainer.feature_cache_stats().memory_hits, 3);
}

TEST_F(TrainerCacheTest, AugmentationWithoutCopiesIsRefusedNotIgnored) {
  REQUIRE_TORCHVISION();
  auto network = counting_resnet();
  TrainerParts parts = head_parts(network);
  parts.augmentations = {std::make_shared<Noise>()};
  Trainer trainer(parts, few_epochs(1), 5);
  try {
    trainer.fit(split(8, 1), {});
    FAIL() << "a frozen backbone trained with augmentation and no augmented copies";
  } catch (const bachlab::Error& e) {
    EXPECT_NE(std::string(e.what()).find("[train.feature_cache] augmented_copies is 0, but 1 augmentation is "
                                         "configured and the model's backbone is frozen"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(network->extracted_images, 0);
}

// --- through `bachlab run` --------------------------------------------------------------

class TransferRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The runner finds plugins as `bachlab` does; the in-tree ones are all in this folder.
    setenv("BACHLAB_PLUGIN_PATH", BACHLAB_TEST_PLUGIN_DIR, 1);
    // A weights file of the test's own, so that a test can change it.
    write_dict(temp_.file("weights.pt"), read_dict(fixture("resnet50_seed7.pt")));
  }

  // A tiny frozen-ResNet50 experiment on synthetic photos (16 photos: 8 train, 4 val,
  // 4 test) with flips and two cached augmented copies; its caches in the test's folder.
  fs::path write_config(const std::string& name, int epochs = 4) const {
    const fs::path file = temp_.path() / (name + ".toml");
    std::ofstream(file) << "[experiment]\nseed = 3\noutput = \"runs\"\n"
                        << "[data]\nsource = \"synthetic\"\nimage_size = 32\nworkers = 1\ncache_dir = \"cache\"\n"
                        << "[data.synthetic]\nper_class = 4\nwidth = 48\nheight = 36\n"
                        << "[data.split]\ntrain = 0.5\nval = 0.25\ntest = 0.25\n"
                        << "[model]\nplugin = \"resnet50\"\nweights = \"weights.pt\"\nhidden_units = 8\n"
                        << "[optimizer]\nplugin = \"adam\"\nlr = 0.01\n"
                        << "[train]\nepochs = " << epochs << "\nbatch_size = 4\nthreads = 2\n"
                        << "[train.feature_cache]\naugmented_copies = 2\n"
                        << "[[augment]]\nplugin = \"flip\"\nhorizontal = true\nvertical = true\n";
    return file;
  }

  // Runs `config`; the progress lines go to `log`.
  static RunSummary run(const fs::path& config, std::string& log) {
    std::ostringstream progress;
    bachlab::host::RunOptions options;
    options.progress = &progress;
    RunSummary summary = bachlab::host::run_experiment(config, options);
    log = progress.str();
    return summary;
  }

  // What `bachlab check` says about `file`: the problems, or "" if there is none.
  static std::string check(const fs::path& file) {
    bachlab::host::Config config = bachlab::host::Config::load(file);
    bachlab::host::PluginRegistry plugins;
    plugins.scan({BACHLAB_TEST_PLUGIN_DIR});
    try {
      bachlab::host::plan_experiment(config, plugins);
    } catch (const bachlab::Error& e) {
      return e.what();
    }
    return "";
  }

  static int64_t count(const std::string& text, const std::string& part) {
    int64_t n = 0;
    for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
    return n;
  }

  size_t feature_files() const {
    size_t n = 0;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(temp_.path() / "cache" / "features", ec))
      n += entry.path().extension() == ".pt";
    return n;
  }

  TempDir temp_;
};

void expect_same_numbers(const RunSummary& a, const RunSummary& b) {
  ASSERT_EQ(a.history.size(), b.history.size());
  for (size_t e = 0; e < a.history.size(); ++e) {
    EXPECT_EQ(a.history[e].train.loss, b.history[e].train.loss) << "epoch " << e + 1;
    EXPECT_EQ(a.history[e].train.accuracy, b.history[e].train.accuracy) << "epoch " << e + 1;
    EXPECT_EQ(a.history[e].val.loss, b.history[e].val.loss) << "epoch " << e + 1;
    EXPECT_EQ(a.history[e].val.auroc_micro, b.history[e].val.auroc_micro) << "epoch " << e + 1;
  }
  ASSERT_EQ(a.splits.size(), b.splits.size());
  for (size_t s = 0; s < a.splits.size(); ++s) {
    EXPECT_EQ(a.splits[s].metrics.loss, b.splits[s].metrics.loss) << a.splits[s].name;
    EXPECT_EQ(a.splits[s].metrics.accuracy, b.splits[s].metrics.accuracy) << a.splits[s].name;
    EXPECT_EQ(a.splits[s].metrics.confusion, b.splits[s].metrics.confusion) << a.splits[s].name;
  }
}

TEST_F(TransferRunTest, SecondRunReadsTheFeaturesFromDiskAndGetsTheSameNumbers) {
  REQUIRE_TORCHVISION();
  std::string cold_log, warm_log;
  const RunSummary cold = run(write_config("frozen"), cold_log);
  // Training copies 1 and 2, then un-augmented training (final metrics), validation and
  // test features: five backbone passes, each written to disk.
  EXPECT_EQ(count(cold_log, "computed (no cache yet)"), 5) << cold_log;
  EXPECT_EQ(count(cold_log, "(augmented copy)"), 2) << cold_log;
  EXPECT_EQ(feature_files(), 5u);

  const RunSummary warm = run(write_config("frozen"), warm_log);
  EXPECT_EQ(count(warm_log, "computed"), 0) << warm_log;
  EXPECT_EQ(count(warm_log, ": disk, "), 5) << warm_log;
  EXPECT_EQ(feature_files(), 5u);
  expect_same_numbers(cold, warm);
}

TEST_F(TransferRunTest, ChangedWeightsFileComputesTheFeaturesAgain) {
  REQUIRE_TORCHVISION();
  std::string log;
  const RunSummary before = run(write_config("frozen", 2), log);
  EXPECT_EQ(feature_files(), 5u);

  // Same name and size, new content: as a re-export of other weights over the old file.
  auto entries = read_dict(temp_.file("weights.pt"));
  for (auto& [name, tensor] : entries)
    if (name == "layer4.2.conv3.weight") tensor = tensor * 0.5;
  write_dict(temp_.file("weights.pt"), entries);
  const RunSummary after = run(write_config("frozen", 2), log);
  EXPECT_EQ(count(log, ": disk, "), 0) << log;
  EXPECT_EQ(count(log, "computed (no cache yet)"), 5) << log;
  EXPECT_EQ(feature_files(), 10u);
  EXPECT_NE(before.history.back().train.loss, after.history.back().train.loss);
}

TEST_F(TransferRunTest, FrozenRunLeavesTheBackboneBitIdenticalToTheWeightsFile) {
  REQUIRE_TORCHVISION();
  std::string log;
  const RunSummary summary = run(write_config("frozen", 3), log);

  // The checkpoint of the last epoch holds what trained (the head), not the frozen backbone:
  // a small fraction of the weights file's size.
  const fs::path last = fs::path(summary.run_dir) / "checkpoints" / "last.pt";
  EXPECT_LT(fs::file_size(last) * 20, fs::file_size(temp_.file("weights.pt")));
  // Loaded into a fresh network of the same settings, the backbone is the file's.
  auto network = create("resnet50", 32, 4, {{"weights", temp_.file("weights.pt")}, {"hidden_units", int64_t{8}}});
  bachlab::host::load_checkpoint_weights(*network, last);

  const auto file = read_map(temp_.file("weights.pt"));
  size_t compared = 0;
  for (const auto& [name, tensor] : backbone_state(*network)) {
    ASSERT_TRUE(file.count(name)) << name;
    EXPECT_TRUE(torch::equal(tensor, file.at(name))) << name << " changed in training";
    ++compared;
  }
  EXPECT_EQ(compared, 318u);  // every backbone tensor: 320 in the file minus fc.weight, fc.bias
}

TEST_F(TransferRunTest, CheckRefusesAugmentationOfAFrozenBackboneWithoutCopies) {
  REQUIRE_TORCHVISION();
  const fs::path file = temp_.path() / "no_copies.toml";
  std::ofstream(file) << "[data]\nsource = \"synthetic\"\nimage_size = 32\n"
                      << "[model]\nplugin = \"resnet50\"\nweights = \"weights.pt\"\n"
                      << "[[augment]]\nplugin = \"flip\"\n";
  EXPECT_EQ(check(file),
              "1 problem in " + file.string() + ":\n  " + file.string() +
                  ": [train.feature_cache] augmented_copies is 0, but 1 augmentation is configured and the model's "
                  "backbone is frozen (mode = \"frozen\"), so cached features would never see an augmented image; "
                  "set augmented_copies = 5 under [train.feature_cache] (each epoch then trains on one of 5 "
                  "augmented copies, each computed once), or set mode = \"finetune\" in [model] to augment every "
                  "batch afresh");
}

TEST_F(TransferRunTest, CheckRefusesCopiesThatWouldBeIgnored) {
  REQUIRE_TORCHVISION();
  const fs::path file = temp_.path() / "finetune.toml";
  std::ofstream(file) << "[data]\nsource = \"synthetic\"\nimage_size = 32\n"
                      << "[model]\nplugin = \"resnet50\"\npretrained = false\nmode = \"finetune\"\n"
                      << "[train.feature_cache]\naugmented_copies = 3\n"
                      << "[[augment]]\nplugin = \"flip\"\n";
  EXPECT_EQ(check(file),
              "1 problem in " + file.string() + ":\n  " + file.string() +
                  ":9: [train.feature_cache] augmented_copies = 3 only applies to a frozen backbone with [[augment]] "
                  "tables, but model \"resnet50\" has no frozen backbone (with mode = \"finetune\" every batch is "
                  "augmented afresh); remove augmented_copies or set it to 0");
}

}  // namespace
