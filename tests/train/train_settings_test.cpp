// What a user reads when [train] is wrong: every problem at once, each naming file, line,
// rule, value found and the way out.
#include "host/config/config.h"
#include "host/train/train_settings.h"

#include <gtest/gtest.h>

#include <torch/torch.h>

namespace bachlab::host {
namespace {

TEST(TrainSettings, DefaultsWhenTablesAreAbsent) {
  Config config = Config::parse("", "empty.toml");
  TrainSettings s = read_train_settings(config);
  EXPECT_EQ(s.epochs, 20);
  EXPECT_EQ(s.batch_size, 32);
  EXPECT_EQ(s.threads, 0);
  EXPECT_EQ(s.device, "cpu");
  EXPECT_EQ(s.schedule.type, ScheduleType::none);
  EXPECT_EQ(s.early_stopping.monitor, "val_loss");
  EXPECT_EQ(s.early_stopping.patience, 0);
  EXPECT_TRUE(config.problems().empty());
}

TEST(TrainSettings, ReadsEveryKey) {
  Config config = Config::parse(R"([train]
epochs = 7
batch_size = 8
threads = 2
label_smoothing = 0.1
restore_best = false
[train.early_stopping]
monitor = "val_accuracy"
patience = 3
min_delta = 0.01
[train.schedule]
type = "plateau"
factor = 0.5
patience = 2
monitor = "train_loss"
min_lr = 1e-5
)",
                                "good.toml");
  TrainSettings s = read_train_settings(config);
  EXPECT_TRUE(config.problems().empty());
  EXPECT_EQ(s.epochs, 7);
  EXPECT_EQ(s.batch_size, 8);
  EXPECT_EQ(s.threads, 2);
  EXPECT_DOUBLE_EQ(s.label_smoothing, 0.1);
  EXPECT_FALSE(s.restore_best);
  EXPECT_EQ(s.early_stopping.monitor, "val_accuracy");
  EXPECT_EQ(s.early_stopping.patience, 3);
  EXPECT_DOUBLE_EQ(s.early_stopping.min_delta, 0.01);
  EXPECT_EQ(s.schedule.type, ScheduleType::plateau);
  EXPECT_DOUBLE_EQ(s.schedule.factor, 0.5);
  EXPECT_EQ(s.schedule.patience, 2);
  EXPECT_EQ(s.schedule.monitor, "train_loss");
  EXPECT_DOUBLE_EQ(s.schedule.min_lr, 1e-5);
}

TEST(TrainSettings, BadValuesAreAllReportedWithFileLineRuleAndValue) {
  Config config = Config::parse(R"([train]
epochs = 0
batch_size = "big"
device = "gpu"
label_smoothing = 1.5
optimiser = "adam"
[train.early_stopping]
monitor = "val_acc"
patience = -1
[train.schedule]
type = "cosine"
step_size = 3
gamma = 0.5
)",
                                "bad.toml");
  read_train_settings(config);
  std::vector<std::string> expected = {
      "bad.toml:2: [train] epochs must be in 1..100000 (was 0)",
      "bad.toml:3: [train] batch_size must be an integer (was string \"big\")",
      "bad.toml:4: [train] device must be one of \"cpu\", \"cuda\" (was \"gpu\"); did you mean \"cpu\"?",
      "bad.toml:5: [train] label_smoothing must be in 0.0..0.999 (was 1.5)",
      "bad.toml:6: [train] unknown key \"optimiser\"; known keys: batch_size, channels_last, device, epochs, "
      "label_smoothing, precision, refit, restore_best, threads",
      "bad.toml:8: [train.early_stopping] monitor must be one of \"val_loss\", \"val_accuracy\", "
      "\"val_auroc_micro\", \"val_auroc_macro\", \"train_loss\", \"train_accuracy\", \"train_auroc_micro\", "
      "\"train_auroc_macro\" (was \"val_acc\")",
      "bad.toml:9: [train.early_stopping] patience must be in 0..100000 (was -1)",
      "bad.toml:12: [train.schedule] step_size only applies to type = \"step\" (type is \"cosine\"); remove it or "
      "change type",
      "bad.toml:13: [train.schedule] gamma only applies to type = \"step\" (type is \"cosine\"); remove it or "
      "change type",
  };
  EXPECT_EQ(config.problems(), expected);
}

TEST(TrainSettings, FeatureCacheTableIsReadWithTheOtherTrainTables) {
  Config config = Config::parse("[train.feature_cache]\naugmented_copies = 5\ndisk = false\n", "cache.toml");
  TrainSettings s = read_train_settings(config);
  EXPECT_EQ(s.feature_cache.augmented_copies, 5);
  EXPECT_FALSE(s.feature_cache.disk);
  EXPECT_EQ(s.feature_cache.origin, "cache.toml");
  EXPECT_EQ(config.problems(), std::vector<std::string>{});

  Config bad = Config::parse("[train.feature_cache]\naugmented_copies = -1\ndsk = true\n", "bad.toml");
  read_train_settings(bad);
  EXPECT_EQ(bad.problems(),
            (std::vector<std::string>{
                "bad.toml:2: [train.feature_cache] augmented_copies must be in 0..1000 (was -1)",
                "bad.toml:3: [train.feature_cache] unknown key \"dsk\"; did you mean \"disk\"?"}));
}

TEST(TrainSettings, CudaWithoutCudaNamesTheKeyAndTheFix) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "this LibTorch has CUDA; the rejection cannot happen";
  Config config = Config::parse("[train]\ndevice = \"cuda\"\n", "gpu.toml");
  TrainSettings s = read_train_settings(config);
  EXPECT_EQ(s.device, "cpu");
  EXPECT_EQ(config.problems(), std::vector<std::string>{
                                   "gpu.toml:2: [train] device must be \"cpu\": this LibTorch has no usable CUDA "
                                   "device (was \"cuda\"); set device = \"cpu\""});
}

TEST(TrainSettings, EffectiveThreadsUsesEveryCoreForZero) {
  EXPECT_EQ(effective_threads(3), 3);
  EXPECT_GE(effective_threads(0), 1);
}

}  // namespace
}  // namespace bachlab::host
