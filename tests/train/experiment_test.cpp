// plan_experiment: a config is validated completely in one pass, with every plugin built.
#include "host/train/experiment.h"
#include "host/train/memory_estimate.h"

#include <gtest/gtest.h>

namespace bachlab::host {
namespace {

class ExperimentTest : public ::testing::Test {
 protected:
  void SetUp() override { registry_.scan({TRAIN_TEST_PLUGIN_DIR, BACHLAB_TEST_PLUGIN_DIR}); }
  PluginRegistry registry_;
};

TEST_F(ExperimentTest, BuildsEveryObjectOnTheConfiguredShape) {
  Config config = Config::parse(R"([experiment]
seed = 3
[data]
source = "synthetic"
image_size = 20
[model]
plugin = "tiny_cnn"
filters = 4
[optimizer]
plugin = "adam"
lr = 0.01
[train]
epochs = 2
)",
                                "/configs/plan.toml");
  ExperimentPlan plan = plan_experiment(config, registry_, PlanOverrides{5, std::nullopt});
  EXPECT_EQ(plan.experiment.name, "plan");
  EXPECT_EQ(plan.experiment.seed, 3u);
  EXPECT_EQ(plan.experiment.output, "/configs/runs");
  EXPECT_EQ(plan.train.epochs, 5);  // the override wins
  EXPECT_EQ(plan.spec.height, 20);
  EXPECT_EQ(plan.spec.num_classes, 4);
  ASSERT_TRUE(plan.model && plan.optimizer);
  EXPECT_EQ(plan.model->forward(torch::zeros({2, 3, 20, 20})).sizes(), (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(plan.optimizer->param_groups().front().options().get_lr(), 0.01);
  // conv 3*4*9+4, hidden 4*16+16, out 16*4+4
  EXPECT_EQ(plan.trainable_parameters, 112 + 80 + 68);
  auto params = plan.key_params();
  ASSERT_GE(params.size(), 4u);
  EXPECT_EQ(params[0], (std::pair<std::string, std::string>{"model", "tiny_cnn"}));
  EXPECT_EQ(params[2], (std::pair<std::string, std::string>{"lr", "0.01"}));
  EXPECT_EQ(params[3], (std::pair<std::string, std::string>{"augment", "none"}));
}

TEST_F(ExperimentTest, KeyParamsNameTheScaleAndStainNormalisationAPatchRecipeUses) {
  // A scaled photo is not squeezed to image_size, so the run tables must not say it is.
  Config config = Config::parse("[data]\nsource = \"synthetic\"\nscale = 0.5\nstain_normalize = \"reinhard\"\n"
                                "[data.patches]\nsize = 16\n[model]\nplugin = \"tiny_cnn\"\n",
                                "scaled.toml");
  const auto params = plan_experiment(config, registry_).key_params();
  auto value = [&](const std::string& key) {
    for (const auto& [k, v] : params)
      if (k == key) return v;
    return std::string("(absent)");
  };
  EXPECT_EQ(value("scale"), "0.5");
  EXPECT_EQ(value("stain_normalize"), "reinhard");
  EXPECT_EQ(value("image_size"), "(absent)");
}

TEST_F(ExperimentTest, MemoryEstimateCountsPhotosBatchAndWeightsAndRefusesWhatCannotFit) {
  Config config = Config::parse("[data]\nsource = \"synthetic\"\nimage_size = 20\n[model]\nplugin = \"tiny_cnn\"\n"
                                "filters = 4\n[train]\nbatch_size = 32\n",
                                "m.toml");
  const ExperimentPlan plan = plan_experiment(config, registry_);
  ASSERT_EQ(plan.trainable_parameters, 260);
  // 100 photos squeezed to 20x20: 1200 bytes each, twice (the prepared set and the splits);
  // a batch of 32 float inputs and its normalised copy; 16 bytes per trainable weight.
  const MemoryEstimate e = estimate_memory(plan, 100, 1536, 2048);
  EXPECT_EQ(e.photo_height, 20);
  EXPECT_DOUBLE_EQ(e.photo_bytes, 2.0 * 100 * 1200);
  EXPECT_DOUBLE_EQ(e.batch_bytes, 2.0 * 4 * 32 * 1200);
  EXPECT_DOUBLE_EQ(e.model_bytes, 16.0 * 260);
  EXPECT_NO_THROW(check_memory(e, "m.toml", e.total() + 1));
  try {
    check_memory(e, "m.toml", e.total() - 1);
    ADD_FAILURE() << "an estimate above the memory must be refused";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_EQ(message.rfind("m.toml: this run needs more than this machine's 1 MiB of memory, at least 1 MiB: 100 "
                            "photos of 3x20x20",
                            0),
              0u)
        << message;
  }
  // A scaled recipe keeps the photo's aspect; the batch is of patches.
  Config scaled = Config::parse("[data]\nsource = \"synthetic\"\nscale = 0.5\n[data.patches]\nsize = 16\n"
                                "[model]\nplugin = \"tiny_cnn\"\n",
                                "s.toml");
  const MemoryEstimate p = estimate_memory(plan_experiment(scaled, registry_), 400, 1536, 2048);
  EXPECT_EQ(p.photo_height, 768);
  EXPECT_EQ(p.photo_width, 1024);
  EXPECT_DOUBLE_EQ(p.photo_bytes, 2.0 * 400 * 3 * 768 * 1024);
  EXPECT_DOUBLE_EQ(p.batch_bytes, 2.0 * 4 * 32 * 3 * 16 * 16);
}

TEST_F(ExperimentTest, SameSeedSameInitialWeights) {
  const std::string text = "[data]\nsource = \"synthetic\"\nimage_size = 12\n[model]\nplugin = \"tiny_cnn\"\n";
  Config a = Config::parse(text, "a.toml");
  Config b = Config::parse(text, "b.toml");
  auto plan_a = plan_experiment(a, registry_);
  auto plan_b = plan_experiment(b, registry_);
  for (size_t i = 0; i < plan_a.model->parameters().size(); ++i)
    EXPECT_TRUE(torch::equal(plan_a.model->parameters()[i], plan_b.model->parameters()[i]));
}

TEST_F(ExperimentTest, EveryProblemOfEveryTableInOneError) {
  Config config = Config::parse(R"([experiment]
name = "a/b"
[data]
source = "synthetic"
image_size = 12
[model]
plugin = "tiny_cnn"
filters = 0
[optimizer]
lr = -1.0
[train]
epochs = 0
[[augment]]
horizontal = true
[tarin]
epochs = 3
)",
                                "many.toml");
  try {
    plan_experiment(config, registry_);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "7 problems in many.toml:\n"
              "  many.toml:2: [experiment] name must be a non-empty folder name without slashes (was \"a/b\"); it "
              "names the run folder\n"
              "  many.toml:8: [model] filters must be in 1..256 (was 0)\n"
              "  many.toml:10: [optimizer] lr must be in 1e-12..10.0 (was -1.0)\n"
              "  many.toml:12: [train] epochs must be in 1..100000 (was 0)\n"
              "  many.toml:13: [[augment]] #1 plugin is required: name an augmentation plugin, e.g. plugin = "
              "\"flip\"\n"
              "  many.toml:14: [[augment]] #1 unknown key \"horizontal\"; known keys: plugin\n"
              "  many.toml:15: unknown table [tarin]; did you mean [train]?");
  }
}

TEST_F(ExperimentTest, AMissingModelPluginIsNamed) {
  Config config = Config::parse("[data]\nsource = \"synthetic\"\n[model]\nfilters = 3\n", "nomodel.toml");
  try {
    plan_experiment(config, registry_);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nomodel.toml:3: [model] plugin is required: name a model plugin, e.g. "
                                         "plugin = \"baseline\""),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace bachlab::host

namespace bachlab::host {
namespace {

TEST(PluginPaths, ListOrSingleFolderRelativeToTheConfig) {
  Config list = Config::parse("[plugins]\npaths = [\"a\", \"/abs/b\"]\n", "/cfg/x.toml");
  EXPECT_EQ(read_plugin_paths(list), (std::vector<std::filesystem::path>{"/cfg/a", "/abs/b"}));
  EXPECT_TRUE(list.problems().empty());
  Config one = Config::parse("[plugins]\npaths = \"c\"\n", "/cfg/y.toml");
  EXPECT_EQ(read_plugin_paths(one), (std::vector<std::filesystem::path>{"/cfg/c"}));
}

TEST(PluginPaths, AnythingButFoldersIsRejected) {
  Config config = Config::parse("[plugins]\npaths = [\"a\", 3]\n", "z.toml");
  EXPECT_TRUE(read_plugin_paths(config).empty());
  EXPECT_EQ(config.problems(), std::vector<std::string>{
                                   "z.toml:2: [plugins] paths must be a folder or a list of folders, as strings (was "
                                   "list [\"a\", 3])"});
}

TEST_F(ExperimentTest, AnEmptyOutputIsRefusedRatherThanWritingIntoTheWorkingDirectory) {
  Config config = Config::parse("[experiment]\noutput = \"\"\n[data]\nsource = \"synthetic\"\nimage_size = 12\n"
                                "[model]\nplugin = \"tiny_cnn\"\n",
                                "/configs/empty.toml");
  try {
    plan_experiment(config, registry_);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "1 problem in /configs/empty.toml:\n  /configs/empty.toml:2: [experiment] output "
                                     "must name a folder (was \"\"); leave it out for \"runs\" beside the config");
  }
}

}  // namespace
}  // namespace bachlab::host
