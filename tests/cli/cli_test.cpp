// Runs the built `bachlab` program and reads what a user would read.
#include "host/config/config.h"

#include <bachlab/sdk/plugin.h>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <torch/version.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <cmath>
#include <fstream>
#include <functional>
#include <iterator>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

namespace fs = std::filesystem;

struct Result {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// `environment`: assignments put before the command, e.g. "BACHLAB_PLUGIN_PATH=/x ".
Result run(const std::string& arguments, const std::string& environment = "") {
  const std::string command = environment + "'" + BACHLAB_BINARY_DIR + "/bachlab' " + arguments + " 2>&1";
  Result result;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return result;
  std::array<char, 4096> buffer;
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) result.output.append(buffer.data(), n);
  int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

TEST(Cli, VersionNamesProgramLibTorchAndAbi) {
  Result r = run("--version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output, std::string("bachlab ") + BACHLAB_VERSION + "\nLibTorch " + TORCH_VERSION +
                          "\nplugin SDK ABI " + std::to_string(BACHLAB_ABI_MAJOR) + "." +
                          std::to_string(BACHLAB_ABI_MINOR) + "\n");
}

TEST(Cli, EveryShippedExperimentConfigChecksClean) {
  // base.toml is only ever extended, and the transfer configs need exported weights
  // (TransferConfigsCheckCleanWithExportedWeights); every other config must validate with
  // the in-tree plugins.
  std::string files;
  for (const auto& entry : fs::directory_iterator(fs::path(BACHLAB_SOURCE_DIR) / "configs")) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() == ".toml" && name != "base.toml" && name.find("transfer") == std::string::npos)
      files += " '" + entry.path().string() + "'";
  }
  for (const auto& entry : fs::directory_iterator(fs::path(BACHLAB_SOURCE_DIR) / "configs" / "tune"))
    if (entry.path().extension() == ".toml") files += " '" + entry.path().string() + "'";
  ASSERT_FALSE(files.empty());
  // --no-data: the configs that read photos from disk name data/BACH, which a checkout lacks.
  Result r = run("check --no-data" + files);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("problem"), std::string::npos) << r.output;
}

// k-fold from the command line on the study's configs (issue #21): their base sets
// train/val/test fractions, which ~KEY removes; without the removal the message names them.
TEST(Cli, EveryShippedConfigWithFractionsCrossValidatesFromTheCommandLine) {
  // Folds from the command line replace the fractions base.toml sets, and say so; removing
  // them with ~KEY (Hydra's way) works too.
  const std::string removed = " data.split.folds=5 ~data.split.train ~data.split.val ~data.split.test";
  int replaced = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(BACHLAB_SOURCE_DIR) / "configs")) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() != ".toml" || name == "base.toml" || name.find("transfer") != std::string::npos)
      continue;
    Result plain = run("check --no-data '" + entry.path().string() + "' data.split.folds=5");
    EXPECT_EQ(plain.exit_code, 0) << name << ": " << plain.output;
    if (plain.output.find("warning: [data.split] folds = 5 (command line) replaces the train/val/test fractions of " +
                          (fs::path(BACHLAB_SOURCE_DIR) / "configs" / "base.toml").string()) == std::string::npos)
      continue;  // a config that sets no fractions (bach_best: folds already)
    ++replaced;
    Result r = run("check --no-data '" + entry.path().string() + "'" + removed);
    EXPECT_EQ(r.exit_code, 0) << name << ": " << r.output;
    EXPECT_EQ(r.output.find("replaces the train/val/test"), std::string::npos) << name << ": " << r.output;
  }
  EXPECT_GE(replaced, 9) << "the study's nine configs extend base.toml's fractions";
}

// A copy of configs/ with a weights/ folder beside it, as docs/transfer.md tells a user to
// make, holding torchvision exports (seeded random weights: `check` reads every key and
// shape, not what the numbers mean) under the names the configs give. Removed afterwards.
class TransferConfigs : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!TRANSFER_HAVE_TORCHVISION)
      GTEST_SKIP() << "no python with torch/torchvision, so the torchvision exports were not built";
    root_ = fs::temp_directory_path() / ("bachlab_cli_transfer_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "configs");
    for (const auto& entry : fs::directory_iterator(fs::path(BACHLAB_SOURCE_DIR) / "configs")) {
      const std::string name = entry.path().filename().string();
      if (name == "base.toml" || name.find("transfer") != std::string::npos) {
        fs::copy_file(entry.path(), root_ / "configs" / name);
        if (name != "base.toml") configs_.push_back(root_ / "configs" / name);
      }
    }
    std::sort(configs_.begin(), configs_.end());
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  // Every weights file a transfer config names, as a link to the export of its model.
  void add_weights() {
    fs::create_directories(root_ / "weights");
    for (const auto& [name, export_name] : std::vector<std::pair<std::string, std::string>>{
             {"resnet50_imagenet.pt", "resnet50_seed7.pt"},
             {"resnet50_seed7.pt", "resnet50_seed7.pt"},
             {"vgg16_imagenet_notop.pt", "vgg16_seed7_notop.pt"},
             {"vgg16_seed7_notop.pt", "vgg16_seed7_notop.pt"}})
      fs::create_symlink(fs::path(TRANSFER_FIXTURE_DIR) / export_name, root_ / "weights" / name);
  }
  std::string quoted_configs() const {
    std::string out;
    for (const auto& config : configs_) out += " '" + config.string() + "'";
    return out;
  }

  fs::path root_;
  std::vector<fs::path> configs_;
};

TEST_F(TransferConfigs, CheckCleanWithExportedWeights) {
  add_weights();
  ASSERT_GE(configs_.size(), 6u) << "expected the resnet50 and vgg16 transfer configs and their quick variants";
  Result r = run("check --no-data" + quoted_configs());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("problem"), std::string::npos) << r.output;
}

TEST_F(TransferConfigs, MissingWeightsFileSaysHowToExportIt) {
  for (const auto& config : configs_) {
    Result r = run("check --no-data '" + config.string() + "'");
    EXPECT_EQ(r.exit_code, 1) << config << "\n" << r.output;
    // Only the weights are missing: one problem, naming the file and the export command.
    EXPECT_NE(r.output.find("1 problem in " + config.string()), std::string::npos) << r.output;
    // Relative to the config that names it, as written.
    EXPECT_NE(r.output.find("[model] weights \"" + (root_ / "configs").string() + "/../weights/"), std::string::npos)
        << r.output;
    // The exact command for this config's file: seeded random weights for the quick ones,
    // VGG16's without the classifier.
    const bool quick = config.filename().string().find("quick") != std::string::npos;
    const std::string model = config.filename().string().substr(0, config.filename().string().find('_'));
    const std::string file = (root_ / "configs").string() + "/../weights/" + model +
                             (quick ? "_seed7" : "_imagenet") + (model == "vgg16" ? "_notop" : "") + ".pt";
    const std::string command = "\"/usr/bin/python3 scripts/export_torchvision.py " + model +
                                (quick ? " --random-seed 7" : " --pretrained") + (model == "vgg16" ? " --notop" : "") +
                                " -o " + file + "\"";
    EXPECT_NE(r.output.find("cannot be opened (no such file); " +
                            std::string(quick ? "make these seeded random weights (no download) from the checkout with "
                                              : "export ImageNet weights on a machine with internet with ") +
                            command),
              std::string::npos)
        << r.output;
    // `scripts/dev.sh setup` runs that very command for the quick configs, so they run as shipped.
    if (quick) {
      const std::string in_dev_sh = "/usr/bin/python3 scripts/export_torchvision.py " + model + " --random-seed 7" +
                                    (model == "vgg16" ? " --notop" : "") + " -o weights/" +
                                    fs::path(file).filename().string() + "\n";
      std::ifstream dev_sh(fs::path(BACHLAB_SOURCE_DIR) / "scripts" / "dev.sh");
      const std::string script((std::istreambuf_iterator<char>(dev_sh)), std::istreambuf_iterator<char>());
      EXPECT_NE(script.find(in_dev_sh), std::string::npos) << "scripts/dev.sh does not run " << in_dev_sh;
    }
  }
}

TEST(Cli, CheckListsEveryProblemAndFails) {
  const fs::path dir = fs::temp_directory_path() / ("bachlab_cli_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path config = dir / "broken.toml";
  std::ofstream(config) << "[data]\nsource = \"synthetic\"\n"
                           "[train]\nepohcs = 3\n"
                           "[model]\nplugin = \"model4a\"\nfilters = 0\n"
                           "[optimizer]\nplugin = \"adamw\"\n";
  Result r = run("check '" + config.string() + "'");
  fs::remove_all(dir);
  EXPECT_EQ(r.exit_code, 1);
  const std::string f = config.string();
  EXPECT_NE(r.output.find(f + ":4: [train] unknown key \"epohcs\"; did you mean \"epochs\"?"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find(f + ":7: [model] filters "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(":9: [optimizer] plugin = \"adamw\" names no optimizer plugin; did you mean \"adam\"?"),
            std::string::npos)
      << r.output;
}

// A model from a folder only --plugin-path names: check finds it as run does.
TEST(Cli, CheckSearchesThePluginPathLikeRun) {
  const fs::path dir = fs::temp_directory_path() / ("bachlab_cli_plugin_path_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path config = dir / "tiny.toml";
  std::ofstream(config) << "[data]\nsource = \"synthetic\"\nimage_size = 16\n[model]\nplugin = \"tiny_cnn\"\n";
  const std::string plugins = std::string(BACHLAB_BINARY_DIR) + "/tests/train/plugins";
  Result without = run("check --no-data '" + config.string() + "'");
  Result with = run("check --no-data --plugin-path '" + plugins + "' '" + config.string() + "'");
  fs::remove_all(dir);
  EXPECT_EQ(without.exit_code, 1) << without.output;
  EXPECT_NE(without.output.find("[model] plugin = \"tiny_cnn\" names no model plugin"), std::string::npos)
      << without.output;
  EXPECT_EQ(with.exit_code, 0) << with.output;
  EXPECT_NE(with.output.find("OK - tiny: model tiny_cnn"), std::string::npos) << with.output;
}

TEST(Cli, CheckAndRunRefuseAConfigThatCannotFitInMemoryWithTheArithmetic) {
  // 4,000 photos squeezed to 4096x4096 are 200 GB as uint8 before anything trains (and
  // patch_resnet's weights do not grow with the input, so the model itself is built): refused
  // by check and by run before a run folder is made, instead of an allocator's backtrace.
  const fs::path dir = fs::temp_directory_path() / ("bachlab_cli_memory_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path config = dir / "huge.toml";
  std::ofstream(config) << "[experiment]\noutput = \"runs\"\n[data]\nsource = \"synthetic\"\nimage_size = 4096\n"
                           "[data.synthetic]\nper_class = 1000\n[model]\nplugin = \"patch_resnet\"\n";
  Result check = run("check '" + config.string() + "'");
  Result train = run("run '" + config.string() + "'");
  const bool made_runs = fs::exists(dir / "runs");
  fs::remove_all(dir);
  for (const Result* r : {&check, &train}) {
    EXPECT_EQ(r->exit_code, 1) << r->output;
    EXPECT_NE(r->output.find(config.string() + ": this run needs more than this machine's"), std::string::npos)
        << r->output;
    EXPECT_NE(r->output.find("4000 photos of 3x4096x4096"), std::string::npos) << r->output;
  }
  EXPECT_FALSE(made_runs);
}

TEST(Cli, RunTakesOneFolderPerPluginPathSoTheConfigAfterItStaysAConfig) {
  const fs::path missing = fs::temp_directory_path() / "bachlab_cli_no_such_config.toml";
  Result r = run("run --plugin-path /nonexistent-plugins '" + missing.string() + "'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find(missing.string() + ": cannot read config file (no such file)"), std::string::npos)
      << r.output;
}

TEST(Cli, ConfigKeysListsHostTablesThenEachPluginsKeys) {
  const std::string config = std::string(BACHLAB_SOURCE_DIR) + "/configs/quickstart.toml";
  Result r = run("config-keys '" + config + "'");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // Each key's value in the config beside its default: quickstart.toml sets epochs, not filters.
  EXPECT_TRUE(std::regex_search(
      r.output, std::regex("\n\\[train\\]\n  key +type +default +range +quickstart\\.toml\n(  .*\n)*  epochs +integer +20 "
                           "+1\\.\\.100000 +25\n")))
      << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex("\nmodel4a \\(model plugin, in \\[model\\]\\)\n(  .*\n)*  filters +"
                                                     "integer or list of integers +\\[32, 64, 128\\] +1\\.\\.4096 +"
                                                     "\\(default\\)\n")))
      << r.output;
  EXPECT_LT(r.output.find("[train]\n"), r.output.find("model4a (model plugin"));
}

// `bachlab config`: the config a run would save (extends merged, overrides applied, paths
// absolute) on stdout, which reads back as a config; --origin says who set each value;
// mistakes are refused as `run` refuses them.
TEST(Cli, ConfigPrintsTheResolvedConfigARunWouldSave) {
  const fs::path dir = fs::temp_directory_path() / ("bachlab_cli_config_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "base.toml") << "[experiment]\ndescription = \"base\"\nseed = 7\n"
                                      "[data]\nsource = \"synthetic\"\nimage_size = 32\ncache_dir = \"cache\"\n"
                                      "[model]\nplugin = \"baseline\"\n[[augment]]\nplugin = \"flip\"\n";
  std::ofstream(dir / "child.toml") << "extends = \"base.toml\"\n[train]\nepochs = 2\nbatch_size = 8\n";
  const std::string child = "'" + (dir / "child.toml").string() + "'";
  const std::string overrides = " train.epochs=3 ~experiment.seed '+augment={plugin = \"rotate90\"}' augment.0.p=0.25";
  Result r = run("config " + child + overrides);
  Result origins = run("config --origin " + child + overrides);
  Result typo = run("config " + child + " train.epohcs=3");
  Result index = run("config " + child + " augment.3.p=0.5");
  Result broken = run("config " + child + " optimizer.plugin=adamw");
  Result study = run("config '" + (fs::path(BACHLAB_SOURCE_DIR) / "configs" / "tune" / "model4a_quick.toml").string() + "'");
  fs::remove_all(dir);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(study.exit_code, 0) << study.output;
  EXPECT_EQ(study.output.rfind("# Fully resolved config (every `extends` and command-line override merged); runs as "
                               "is with `bachlab tune`.\n",
                               0),
            0u)
      << study.output;
  // Exactly a run's config.toml: base.toml's cache_dir absolute, seed removed, epochs set,
  // rotate90 appended and the first table's p set.
  EXPECT_EQ(r.output, "# Fully resolved config (every `extends` and command-line override merged); runs as is with "
                      "`bachlab run`.\n[data]\ncache_dir = '" + (dir / "cache").string() +
                          "'\nimage_size = 32\nsource = 'synthetic'\n\n[experiment]\ndescription = 'base'\n\n[model]\n"
                          "plugin = 'baseline'\n\n[train]\nbatch_size = 8\nepochs = 3\n\n[[augment]]\np = 0.25\n"
                          "plugin = 'flip'\n\n[[augment]]\nplugin = 'rotate90'\n");
  const bachlab::host::Config again = bachlab::host::Config::parse(r.output, "printed.toml");
  EXPECT_EQ(again.resolved_toml(), r.output);

  EXPECT_EQ(origins.exit_code, 0) << origins.output;
  const std::string base = (dir / "base.toml").string();
  EXPECT_TRUE(std::regex_search(origins.output, std::regex("(^|\n)train\\.epochs = 3 +# command line\n"))) << origins.output;
  EXPECT_TRUE(std::regex_search(origins.output, std::regex("(^|\n)train\\.batch_size = 8 +# [^\n]*child\\.toml:4\n")))
      << origins.output;
  EXPECT_NE(origins.output.find("data.image_size = 32"), std::string::npos) << origins.output;
  EXPECT_NE(origins.output.find("# " + base + ":6\n"), std::string::npos) << origins.output;
  EXPECT_NE(origins.output.find("augment.1.plugin = \"rotate90\""), std::string::npos) << origins.output;
  EXPECT_EQ(origins.output.find("experiment.seed"), std::string::npos) << origins.output;

  EXPECT_EQ(typo.exit_code, 1);
  EXPECT_NE(typo.output.find("command line: [train] unknown key \"epohcs\"; did you mean \"epochs\"?"), std::string::npos)
      << typo.output;
  EXPECT_EQ(index.exit_code, 1);
  EXPECT_NE(index.output.find("augment.3.p=0.5: [[augment]] has 1 table (indices 0-0), so there is no table 3"),
            std::string::npos)
      << index.output;
  EXPECT_EQ(broken.exit_code, 1);
  EXPECT_NE(broken.output.find("command line: [optimizer] plugin = \"adamw\" names no optimizer plugin; did you mean "
                               "\"adam\"?"),
            std::string::npos)
      << broken.output;
}

// Several configs: a value column each, "-" where a config's readers do not ask for the key
// (model2.toml builds no model4a); the Markdown format has the same columns before the meaning.
TEST(Cli, ConfigKeysShowsEachConfigsValuesBesideTheDefaults) {
  const std::string configs = std::string(BACHLAB_SOURCE_DIR) + "/configs/";
  Result text = run("config-keys '" + configs + "quickstart.toml' '" + configs + "model2.toml' train.epochs=7");
  EXPECT_EQ(text.exit_code, 0) << text.output;
  EXPECT_TRUE(std::regex_search(text.output, std::regex("\n  key +type +default +range +quickstart\\.toml +model2\\.toml\n")))
      << text.output;
  EXPECT_TRUE(std::regex_search(text.output, std::regex("\n  epochs +integer +20 +1\\.\\.100000 +7 +7\n"))) << text.output;
  EXPECT_TRUE(std::regex_search(text.output, std::regex("\nmodel4a \\(model plugin, in \\[model\\]\\)\n(  .*\n)*  dropout +"
                                                        "number +0\\.5 +0\\.0\\.\\.0\\.99 +0\\.3 +-\n")))
      << text.output;
  Result markdown = run("config-keys --format markdown '" + configs + "quickstart.toml'");
  EXPECT_EQ(markdown.exit_code, 0) << markdown.output;
  EXPECT_NE(markdown.output.find("| key | type | default | range | quickstart.toml | meaning |\n|---|---|---|---|---|---|\n"),
            std::string::npos)
      << markdown.output;
  EXPECT_TRUE(std::regex_search(markdown.output, std::regex("\n\\| `epochs` \\| integer \\| 20 \\| 1\\.\\.100000 \\| 25 \\|  \\|\n")))
      << markdown.output;
}

TEST(Cli, ConfigKeysRefusesABrokenConfigWithChecksMessage) {
  const fs::path dir = fs::temp_directory_path() / ("bachlab_cli_keys_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path config = dir / "broken.toml";
  std::ofstream(config) << "[data]\nsource = \"synthetic\"\n[train]\nepohcs = 3\n[model]\nplugin = \"model4a\"\n";
  Result keys = run("config-keys '" + config.string() + "'");
  Result check = run("check '" + config.string() + "'");
  fs::remove_all(dir);
  EXPECT_EQ(keys.exit_code, 1);
  EXPECT_EQ(keys.output, "error: " + check.output) << keys.output;
}

TEST(Cli, ConfigKeysCheckNamesEveryDriftAndFails) {
  const fs::path dir = fs::temp_directory_path() / ("bachlab_cli_drift_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string config = std::string(BACHLAB_SOURCE_DIR) + "/configs/quickstart.toml";
  const fs::path doc = dir / "configs.md";
  // The doc as `--update` writes it, then a key nobody reads.
  std::ofstream(doc) << "# Keys\n<!-- Generated by `bachlab config-keys --update` (scripts/update_config_docs.sh) down "
                        "to the end marker: edit only the meaning column. -->\n<!-- End of the generated tables. -->\n";
  Result update = run("config-keys --update '" + doc.string() + "' '" + config + "'");
  EXPECT_EQ(update.exit_code, 1) << update.output;  // refused: plugins no config given builds
  EXPECT_NE(update.output.find("tuner plugin \"random\""), std::string::npos) << update.output;
  Result check = run("config-keys --check '" + doc.string() + "' '" + config + "'");
  fs::remove_all(dir);
  EXPECT_EQ(check.exit_code, 1);
  EXPECT_NE(check.output.find(doc.string() + ": section `[train]` is missing (a host table)"), std::string::npos)
      << check.output;
  EXPECT_NE(check.output.find("section model4a is missing (a model plugin)"), std::string::npos) << check.output;
}

// `bachlab bench` runs the plugin benchmark program for one kind and writes its JSON;
// `bench compare` puts two such files side by side, with the speedup of each benchmark.
TEST(Cli, BenchRunsOneKindAndCompareShowsEachSpeedup) {
#ifndef BACHLAB_BENCH_BUILT
  GTEST_SKIP() << "the benchmarks are not part of this build (BACHLAB_BUILD_BENCH=OFF)";
#endif
  ASSERT_TRUE(fs::exists(fs::path(BACHLAB_BINARY_DIR) / "bench" / "bench_plugins"))
      << "bench_plugins is part of this build but missing";
  // One folder per process, so two builds running this test at once do not share it.
  const fs::path folder = fs::temp_directory_path() / ("bachlab_cli_bench_" + std::to_string(::getpid()));
  fs::remove_all(folder);
  fs::create_directories(folder);
  Result r = run("bench --kind optimizer --filter 'optimizer/(sgd|rmsprop)' --min-time 0.05 --out " +
                 (folder / "run.json").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("optimizer/sgd/step"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("optimizer/adam"), std::string::npos) << "--filter was not applied:\n" << r.output;
  // Issue #21 item 11: after each benchmark, how many of those selected are done and the
  // time left at their pace so far; the last line says the total time. In a log too.
  EXPECT_TRUE(std::regex_search(r.output, std::regex("\nbenchmarks 1/2 \\[#{12}\\.{12}\\]  50% [0-9.]+/s ETA [0-9.]+s\n")))
      << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex("\nbenchmarks 2/2 \\[#{24}\\] 100% [0-9.]+/s in [0-9.]+s\n")))
      << r.output;
  std::ifstream written(folder / "run.json");
  const std::string json((std::istreambuf_iterator<char>(written)), std::istreambuf_iterator<char>());
  EXPECT_NE(json.find("\"optimizer/sgd/step/real_time\""), std::string::npos) << json;

  auto write = [&](const char* name, const std::string& benchmarks) {
    std::ofstream(folder / name) << "{\"benchmarks\": [" << benchmarks << "]}";
  };
  write("before.json", R"({"name": "model/a/forward", "run_type": "iteration", "real_time": 2.0, "time_unit": "ms"},
                          {"name": "gone", "run_type": "iteration", "real_time": 5.0, "time_unit": "us"})");
  write("after.json", R"({"name": "model/a/forward", "run_type": "iteration", "real_time": 500.0, "time_unit": "us"},
                         {"name": "new", "run_type": "iteration", "real_time": 1.5, "time_unit": "s"})");
  r = run("bench compare " + (folder / "before.json").string() + " " + (folder / "after.json").string());
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output.substr(0, r.output.find("BEFORE, AFTER: median")),
            "BENCHMARK            BEFORE  SPREAD       AFTER  SPREAD  SPEEDUP\n"
            "gone                   5 us       -           -                -\n"
            "model/a/forward        2 ms       -      500 us       -    4.00x\n"
            "new                       -               1.5 s       -        -\n");
  EXPECT_NE(r.output.find("note: results of one repetition have no spread"), std::string::npos) << r.output;

  // Repetitions (issue #21 item 9): medians, their spread, and a speedup within the spread
  // marked as no difference.
  write("before.json", R"({"name": "m", "real_time": 10.0, "time_unit": "ms"},
                          {"name": "m", "real_time": 12.0, "time_unit": "ms"},
                          {"name": "m", "real_time": 11.0, "time_unit": "ms"},
                          {"name": "m_median", "run_type": "aggregate", "real_time": 11.0, "time_unit": "ms"},
                          {"name": "fast", "real_time": 4.0, "time_unit": "ms"},
                          {"name": "fast", "real_time": 4.1, "time_unit": "ms"})");
  write("after.json", R"({"name": "m", "real_time": 9.5, "time_unit": "ms"},
                         {"name": "m", "real_time": 11.5, "time_unit": "ms"},
                         {"name": "m", "real_time": 10.0, "time_unit": "ms"},
                         {"name": "fast", "real_time": 2.0, "time_unit": "ms"},
                         {"name": "fast", "real_time": 2.02, "time_unit": "ms"})");
  r = run("bench compare " + (folder / "before.json").string() + " " + (folder / "after.json").string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.substr(0, r.output.find("BEFORE, AFTER: median")),
            "BENCHMARK      BEFORE  SPREAD       AFTER  SPREAD  SPEEDUP\n"
            "fast          4.05 ms      2%     2.01 ms      1%    2.01x\n"
            "m               11 ms     18%       10 ms     20%    1.10x  ~\n");
  EXPECT_NE(r.output.find("warning: 1 of the speedups (~) are within the spread of their repetitions"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("note: results of one repetition"), std::string::npos) << r.output;
  fs::remove_all(folder);
}

TEST(Cli, UnknownCommandIsAUsageError) {
  Result r = run("tnue");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.output, "bachlab: unknown command \"tnue\"; did you mean \"tune\"? (see bachlab --help)\n");
}

TEST(Cli, NewPluginWritesAFolderAndRefusesBadNames) {
  const fs::path dir = fs::temp_directory_path() / ("bachlab_cli_new_plugin_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  Result made = run("new-plugin augmentation speckle --dir '" + dir.string() + "'");
  EXPECT_EQ(made.exit_code, 0) << made.output;
  EXPECT_EQ(made.output, "wrote " + (dir / "speckle").string() +
                             "/: augmentation plugin \"speckle\" (speckle.cpp), CMakeLists.txt, test_speckle.cpp, "
                             "README.md\nbuild and run it as " + (dir / "speckle" / "README.md").string() + " says\n");
  Result again = run("new-plugin augmentation speckle --dir '" + dir.string() + "'");
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_EQ(again.output, "error: " + (dir / "speckle").string() +
                              ": already exists; new-plugin never overwrites, so choose another NAME or --dir\n");
  Result bad = run("new-plugin model My-Net --dir '" + dir.string() + "'");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.output, "error: plugin name \"My-Net\" is not valid: it must start with a lowercase letter and have "
                        "only lowercase letters, digits and _, at most 64 characters (it names the source file, the "
                        "CMake target and the .so)\n");
  fs::remove_all(dir);
}

TEST(Cli, NewPluginRefusesANameTheHostAlreadyHas) {
  Result r = run("new-plugin optimizer sgd --dir '" + fs::temp_directory_path().string() + "'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.output, std::string("error: optimizer plugin \"sgd\" already exists (") + BACHLAB_TEST_PLUGIN_DIR +
                          "/bachlab-optimizer-sgd.so); bachlab would reject a second one as shadowed, so choose "
                          "another name\n");
}

// A folder of its own for one test, removed afterwards.
class CliFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("bachlab_cli_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" +
            std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A config that trains in a second: the baseline plugin on 16x16 synthetic photos.
  fs::path tiny_config(const std::string& name, const std::string& extra = "") {
    const fs::path file = dir_ / (name + ".toml");
    std::ofstream(file) << "[experiment]\nseed = 3\noutput = \"runs\"\n"
                        << "[data]\nsource = \"synthetic\"\nimage_size = 16\nworkers = 1\ncache_dir = \""
                        << (fs::temp_directory_path() / "bachlab_cli_test_cache").string() << "\"\n"
                        << "[data.synthetic]\nper_class = 5\nwidth = 32\nheight = 24\n"
                        << "[model]\nplugin = \"baseline\"\nfilters = 4\nhidden_units = 8\n"
                        << "[optimizer]\nplugin = \"adam\"\nlr = 0.01\n"
                        << "[train]\nepochs = 3\nbatch_size = 8\nthreads = 1\n"
                        << extra;
    return file;
  }
  std::string q(const fs::path& path) const { return "'" + path.string() + "'"; }
  static size_t count(const std::string& text, const std::string& word) {
    size_t n = 0;
    for (size_t at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) ++n;
    return n;
  }
  // The only run folder of experiment `name`.
  fs::path run_folder(const std::string& name) const {
    std::vector<fs::path> found;
    for (const auto& entry : fs::directory_iterator(dir_ / "runs" / name)) found.push_back(entry.path());
    EXPECT_EQ(found.size(), 1u);
    return found.empty() ? fs::path() : found.front();
  }

  fs::path dir_;
};

std::string read_text(const fs::path& file) {
  std::ifstream in(file);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST_F(CliFolder, RunTakesOverridesAndSavesTheFinalValues) {
  const fs::path config = tiny_config("tiny");
  Result r = run("run " + q(config) + " train.epochs=1 optimizer.lr=5e-1 model.hidden_units=6");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string saved = read_text(run_folder("tiny") / "config.toml");
  EXPECT_NE(saved.find("epochs = 1\n"), std::string::npos) << saved;
  EXPECT_NE(saved.find("lr = 0.5\n"), std::string::npos) << saved;
  EXPECT_NE(saved.find("hidden_units = 6\n"), std::string::npos) << saved;
  // One epoch was trained, not the file's three, and the override was not taken for a file.
  EXPECT_EQ(count(read_text(run_folder("tiny") / "history.csv"), "\n"), 2u);
  EXPECT_EQ(r.output.find("train.epochs=1:"), std::string::npos) << r.output;

  // eval names the classes on the confusion matrix's rows and columns.
  Result e = run("eval " + q(run_folder("tiny")));
  ASSERT_EQ(e.exit_code, 0) << e.output;
  EXPECT_NE(e.output.find("confusion matrix (rows true class, columns predicted class)\n"
                          "true \\ predicted    Normal    Benign    InSitu  Invasive\nNormal          "),
            std::string::npos)
      << e.output;
  EXPECT_NE(e.output.find("\nInvasive        "), std::string::npos) << e.output;
  // Then row-normalised: each true class's row of shares adds up to 100% (up to rounding).
  const size_t shares = e.output.find("the same as shares of each true class (the diagonal is each class's recall)\n");
  ASSERT_NE(shares, std::string::npos) << e.output;
  std::istringstream rows(e.output.substr(shares));
  std::string line;
  std::getline(rows, line);
  for (const char* name : {"Normal", "Benign", "InSitu", "Invasive"}) {
    ASSERT_TRUE(std::getline(rows, line)) << e.output;
    EXPECT_EQ(line.rfind(name, 0), 0u) << line;
    std::istringstream cells(line.substr(std::string(name).size()));
    double sum = 0;
    for (std::string cell; cells >> cell;) sum += std::stod(cell);
    EXPECT_NEAR(sum, 100, 2) << line;
  }
}

// The columns of history.csv as numbers, one row per epoch (an empty cell is NaN).
std::vector<std::vector<double>> history_rows(const fs::path& file) {
  std::vector<std::vector<double>> rows;
  std::istringstream in(read_text(file));
  std::string line;
  std::getline(in, line);  // the header
  while (std::getline(in, line)) {
    std::vector<double> row;
    std::istringstream cells(line);
    std::string cell;
    while (std::getline(cells, cell, ',')) row.push_back(cell.empty() ? std::nan("") : std::stod(cell));
    rows.push_back(row);
  }
  return rows;
}

// Starts `bachlab ARGS...` without waiting, its output to `log`; returns its pid.
pid_t start_in_background(const std::vector<std::string>& args, const fs::path& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    const std::string program = std::string(BACHLAB_BINARY_DIR) + "/bachlab";
    std::vector<char*> argv{const_cast<char*>(program.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(program.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

// Polls `done` every 20 ms for at most `seconds`; whether it came true.
bool wait_for(const std::function<bool()>& done, int seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

// Lines in history.csv of the only run of experiment `name` under `dir`/runs (0 if none yet).
size_t history_lines(const fs::path& dir, const std::string& name) {
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(dir / "runs" / name, error)) {
    std::ifstream in(entry.path() / "history.csv");
    return static_cast<size_t>(std::count(std::istreambuf_iterator<char>(in), {}, '\n'));
  }
  return 0;
}

// Ctrl-C during a run: training stops at the next batch, the run says where it stopped and
// the exact command that resumes it, exits with 128 + SIGINT, and that command finishes it.
TEST_F(CliFolder, CtrlCSaysWhereTheRunStoppedAndHowToResumeIt) {
  const fs::path config = tiny_config("interrupted");
  const fs::path log = dir_ / "interrupted.log";
  const pid_t pid = start_in_background({"run", config.string(), "train.epochs=100000"}, log);
  ASSERT_GT(pid, 0);
  // Once an epoch is in history.csv the run is training: interrupt it (wait at most 60 s).
  auto history_rows_now = [&] { return history_lines(dir_, "interrupted"); };
  wait_for([&] { return history_rows_now() >= 2; }, 60);
  kill(pid, SIGINT);
  int status = 0;
  if (!wait_for([&] { return waitpid(pid, &status, WNOHANG) != 0; }, 60)) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    FAIL() << "the run did not stop within 60 s of Ctrl-C:\n" << read_text(log);
  }
  const std::string output = read_text(log);
  ASSERT_TRUE(WIFEXITED(status)) << output;
  EXPECT_EQ(WEXITSTATUS(status), 128 + SIGINT) << output;
  const fs::path folder = run_folder("interrupted");
  EXPECT_NE(output.find("interrupted in epoch "), std::string::npos) << output;
  EXPECT_NE(output.find(" of 100000 of " + folder.string() + " (epochs 1-"), std::string::npos) << output;
  EXPECT_NE(output.find("resume with: bachlab run --resume " + folder.string() + "\n"), std::string::npos) << output;

  // Everywhere the run is shown it is named as not finished (issue #21 item 6).
  Result other = run("run " + q(tiny_config("other")) + " train.epochs=1");
  ASSERT_EQ(other.exit_code, 0) << other.output;
  Result compared = run("compare " + q(folder) + " " + q(run_folder("other")));
  EXPECT_EQ(compared.exit_code, 1) << compared.output;
  EXPECT_NE(compared.output.find(folder.string() + ": this run has not finished ("), std::string::npos)
      << compared.output;
  Result evaluated_best = run("eval " + q(folder));
  EXPECT_EQ(evaluated_best.exit_code, 0) << evaluated_best.output;
  EXPECT_NE(evaluated_best.output.find("warning: not finished: it stopped after epoch "), std::string::npos)
      << evaluated_best.output;
  EXPECT_NE(evaluated_best.output.find(" of 100000 (interrupted); `bachlab run --resume " + folder.string()),
            std::string::npos)
      << evaluated_best.output;
  Result compared_now = run("compare " + q(folder) + " " + q(run_folder("other")));
  EXPECT_EQ(compared_now.exit_code, 0) << compared_now.output;
  EXPECT_NE(compared_now.output.find("warning: " + folder.string() + " did not finish: it stopped after epoch "),
            std::string::npos)
      << compared_now.output;

  // The command it printed continues from the last saved epoch (a few more, then stop).
  Result resumed = run("run --resume " + q(folder) + " --epochs " + std::to_string(history_rows_now() + 1));
  EXPECT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming after epoch "), std::string::npos) << resumed.output;
}

// The processes of `bachlab run --nproc` whose parent is `launcher` (its ranks).
std::vector<pid_t> children_of(pid_t launcher) {
  std::vector<pid_t> children;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream status(entry.path() / "status");
    for (std::string line; std::getline(status, line);)
      if (line.rfind("PPid:", 0) == 0 && std::stol(line.substr(5)) == launcher) children.push_back(std::stoi(name));
  }
  return children;
}

// Ended: gone, or a zombie its new parent has not reaped yet.
bool ended(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), {});
  const size_t paren = text.rfind(')');
  return text.empty() || paren == std::string::npos || text.substr(paren + 2, 1) == "Z";
}

// Issue #22 item 3: a rank never outlives its launcher, and a run folder has one writer: a
// second `run --resume` or an `eval` of a folder being written is refused, naming the
// process that writes it; once the writer is gone the folder is free again.
TEST_F(CliFolder, RanksDieWithTheirLauncherAndARunFolderHasOneWriter) {
  const fs::path config = tiny_config("ranks");
  const pid_t launcher = start_in_background(
      {"run", config.string(), "train.epochs=100000", "--nproc", "2", "--timeout", "60"}, dir_ / "ranks.log");
  ASSERT_GT(launcher, 0);
  ASSERT_TRUE(wait_for([&] { return history_lines(dir_, "ranks") >= 2; }, 120)) << read_text(dir_ / "ranks.log");
  const fs::path folder = run_folder("ranks");
  const std::vector<pid_t> ranks = children_of(launcher);
  ASSERT_EQ(ranks.size(), 2u);

  for (const std::string& second : {"run --resume " + q(folder), "eval " + q(folder)}) {
    Result r = run(second);
    EXPECT_EQ(r.exit_code, 1) << second << "\n" << r.output;
    EXPECT_NE(r.output.find(folder.string() + ": process "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(" is writing this folder (a run, a resume or an eval); wait for it to end, or stop it"),
              std::string::npos)
        << r.output;
  }

  kill(launcher, SIGKILL);
  int status = 0;
  waitpid(launcher, &status, 0);
  const bool stopped = wait_for([&] { return ended(ranks[0]) && ended(ranks[1]); }, 30);
  if (!stopped)
    for (pid_t rank : ranks) kill(rank, SIGKILL);
  EXPECT_TRUE(stopped) << "the ranks kept running for 30 s after their launcher was killed";
  // The writers are gone, and with them the lock: the folder can be evaluated.
  Result after = run("eval " + q(folder));
  EXPECT_EQ(after.exit_code, 0) << after.output;
}

// A tensor larger than the memory there is: a plain error saying how much was asked for and
// what to lower, not "internal error" with LibTorch's backtrace (exit 1, not 3).
TEST_F(CliFolder, AFailedAllocationSaysWhatToLower) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer reserves more address space than the limit this test sets";
#endif
  // 12 photos of 3 x 4096 x 4096 as floats in one batch need 2.25 GiB, over a 1.5 GiB limit
  // (the program and LibTorch load within it).
  Result r = run("run " + q(tiny_config("huge")) + " data.image_size=4096 train.epochs=1 train.batch_size=12",
                 "ulimit -v 1500000; ");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("error: out of memory: LibTorch could not allocate a tensor ("), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("lower [train] batch_size"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("internal error"), std::string::npos) << r.output;
}

// Issue #22 item 7: what `run` refuses before training, `check` refuses too, and a refused
// run (alone or a cross-validation) leaves no folder behind.
TEST_F(CliFolder, CheckRefusesWhatRunRefusesAndARefusedRunLeavesNoFolder) {
  struct Case {
    std::string name, extra, message;
  };
  const std::vector<Case> cases = {
      {"reference", "[data]\nstain_normalize = \"macenko\"\nstain_reference = \"missing.tif\"\n",
       "missing.tif\": " + (dir_ / "missing.tif").string() + ": cannot open the file (No such file or directory)"},
      // Quarter-scale 32x24 photos are 8x6: no 16-pixel patch fits.
      {"patch", "[data]\nscale = 0.25\n[data.patches]\nsize = 16\nper_image = 2\n",
       "[data.patches] size = 16 is larger than the prepared images (8x6 pixels, width x height)"},
      {"patch_folds", "[data]\nscale = 0.25\n[data.patches]\nsize = 16\nper_image = 2\n[data.split]\nfolds = 2\n",
       "[data.patches] size = 16 is larger than the prepared images (8x6 pixels, width x height)"},
  };
  for (const auto& c : cases) {
    // tiny_config's [data] comes first; this one's keys go in a file that extends it.
    const fs::path base = tiny_config(c.name + "_base");
    const fs::path config = dir_ / (c.name + ".toml");
    std::ofstream(config) << "extends = \"" << base.string() << "\"\n"
                          << "[experiment]\nname = \"" << c.name << "\"\n" << c.extra;
    for (const std::string& command : {"check ", "run "}) {
      Result r = run(command + q(config));
      EXPECT_EQ(r.exit_code, 1) << command << c.name << "\n" << r.output;
      EXPECT_NE(r.output.find(c.message), std::string::npos) << command << c.name << "\n" << r.output;
    }
    EXPECT_FALSE(fs::exists(dir_ / "runs" / c.name)) << c.name << ": the refused run left a folder";
  }
}

// predict takes folders of photos (issue #21 item 10); with --heatmap, photos of one name
// from different folders get a heatmap each (issue #22 item 9), and a heatmap folder that
// cannot be made is an error before any photo is predicted.
// examples/predict_exported.py, given only what `bachlab export` wrote, gives the class
// probabilities `bachlab predict` gives (#21 item 3): a patch model with Reinhard
// normalisation, a resize by scale, TTA and the tissue rule, and a whole-photo model.
TEST_F(CliFolder, APythonScriptReproducesPredictFromAnExport) {
  if (std::system("/usr/bin/python3 -c 'import cv2, torch' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "needs /usr/bin/python3 with torch and cv2 (scripts/dev.sh setup installs python3-torch and "
                    "python3-opencv)";
  const fs::path photos = fs::temp_directory_path() / "bachlab_cli_test_cache" / "synthetic-v1-32x24-5per-class-seed0" /
                          "Photos";
  const fs::path script = fs::path(BACHLAB_SOURCE_DIR) / "examples" / "predict_exported.py";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"patches", "data.scale=0.75 data.stain_normalize=reinhard data.patches.size=8 data.patches.per_image=2 "
                  "data.patches.min_tissue=0.2 eval.tta=d4 eval.patches.stride=5 eval.patches.aggregate=vote"},
      {"whole", "eval.tta=flips"}};
  for (const auto& [name, overrides] : cases) {
    ASSERT_EQ(run("run " + q(tiny_config(name)) + " train.epochs=1 " + overrides).exit_code, 0) << name;
    const fs::path folder = run_folder(name), exported = dir_ / (name + "-export");
    Result e = run("export " + q(folder) + " --out " + q(exported));
    ASSERT_EQ(e.exit_code, 0) << e.output;
    std::string files;
    for (const char* photo : {"Normal/n001.tif", "Benign/b002.tif", "InSitu/is003.tif", "Invasive/iv004.tif"})
      files += " " + q(photos / photo);
    Result predicted = run("predict " + q(folder) + files + " --format json");
    ASSERT_EQ(predicted.exit_code, 0) << predicted.output;
    const fs::path python_out = dir_ / (name + "-python.json");
    ASSERT_EQ(std::system(("/usr/bin/python3 " + q(script) + " " + q(exported) + files + " > " + q(python_out)).c_str()),
              0);
    const auto theirs = nlohmann::json::parse(read_text(python_out));
    // The JSON list, without the lines predict writes on stderr around it.
    const size_t begin = predicted.output.find('['), end = predicted.output.rfind(']');
    ASSERT_NE(begin, std::string::npos) << predicted.output;
    const auto ours = nlohmann::json::parse(predicted.output.substr(begin, end + 1 - begin));
    ASSERT_EQ(theirs.size(), 4u);
    ASSERT_EQ(ours.size(), 4u);
    for (size_t i = 0; i < 4; ++i) {
      EXPECT_EQ(theirs[i].at("predicted"), ours[i].at("predicted")) << name;
      for (const auto& [label, p] : ours[i].at("probabilities").items())
        EXPECT_NEAR(theirs[i].at("probabilities").at(label).get<double>(), p.get<double>(), 1e-4) << name << " " << label;
    }
  }
}

TEST_F(CliFolder, PredictTakesFoldersAndGivesEveryPhotoItsOwnHeatmap) {
  // A patch model: its heatmaps are maps (a whole-photo model's are refused below).
  Result trained = run("run " + q(tiny_config("seen", "[data.patches]\nsize = 8\nper_image = 2\n")) +
                       " train.epochs=1");
  ASSERT_EQ(trained.exit_code, 0) << trained.output;
  const fs::path photos = fs::temp_directory_path() / "bachlab_cli_test_cache" / "synthetic-v1-32x24-5per-class-seed0" /
                          "Photos";
  std::vector<fs::path> normal;
  for (const auto& entry : fs::directory_iterator(photos / "Normal")) normal.push_back(entry.path());
  std::sort(normal.begin(), normal.end());
  ASSERT_GE(normal.size(), 2u);
  for (const std::string folder : {"a", "b"}) {
    fs::create_directories(dir_ / folder);
    fs::copy_file(normal[folder == "a" ? 0 : 1], dir_ / folder / "same.tif");
  }

  Result r = run("predict " + q(run_folder("seen")) + " " + q(dir_ / "a" / "same.tif") + " " +
                 q(dir_ / "b" / "same.tif") + " --heatmap " + q(dir_ / "maps"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir_ / "maps" / "a-same.heatmap.png")) << r.output;
  EXPECT_TRUE(fs::exists(dir_ / "maps" / "b-same.heatmap.png")) << r.output;
  EXPECT_NE(r.output.find("heatmap of " + (dir_ / "b" / "same.tif").string() + ": " +
                          (dir_ / "maps" / "b-same.heatmap.png").string()),
            std::string::npos)
      << r.output;

  // A folder: every photo in it and its subfolders, one CSV row each (and a header).
  Result all = run("predict " + q(run_folder("seen")) + " " + q(photos) + " --format csv");
  ASSERT_EQ(all.exit_code, 0) << all.output;
  EXPECT_EQ(count(all.output, ".tif,"), 20u) << all.output;
  fs::create_directories(dir_ / "nothing");
  Result none = run("predict " + q(run_folder("seen")) + " " + q(dir_ / "nothing"));
  EXPECT_EQ(none.exit_code, 1) << none.output;
  EXPECT_NE(none.output.find((dir_ / "nothing").string() + ": the folder holds no photos"), std::string::npos)
      << none.output;

  // The run's model taken away (docs/export.md; its numbers are checked in RunTest).
  Result exported = run("export " + q(run_folder("seen")) + " --out " + q(dir_ / "exported"));
  EXPECT_EQ(exported.exit_code, 0) << exported.output;
  EXPECT_NE(exported.output.find("model.pt: TorchScript, forward(x) with x float32 (N, 3, 8, 8) RGB in [0,1]"),
            std::string::npos)
      << exported.output;
  EXPECT_TRUE(fs::exists(dir_ / "exported" / "preprocessing.json"));

  // A photo of glass alone is predicted, with a warning that it shows no tissue.
  cv::imwrite((dir_ / "glass.png").string(), cv::Mat(24, 32, CV_8UC3, cv::Scalar(245, 245, 245)));
  Result glass = run("predict " + q(run_folder("seen")) + " " + q(dir_ / "glass.png"));
  EXPECT_EQ(glass.exit_code, 0) << glass.output;
  EXPECT_NE(glass.output.find("warning: " + (dir_ / "glass.png").string() +
                              ": only 0.0% of the photo is tissue (the rest is glass)"),
            std::string::npos)
      << glass.output;
  EXPECT_EQ(r.output.find("warning:"), std::string::npos) << r.output;

  // A whole-photo model gives one probability per class for a photo: no map is drawn (issue
  // #21 item 5), and predict says why.
  Result whole = run("run " + q(tiny_config("whole")) + " train.epochs=1");
  ASSERT_EQ(whole.exit_code, 0) << whole.output;
  Result flat = run("predict " + q(run_folder("whole")) + " " + q(dir_ / "a" / "same.tif") + " --heatmap " +
                    q(dir_ / "flat"));
  EXPECT_EQ(flat.exit_code, 0) << flat.output;
  EXPECT_NE(flat.output.find("no heatmap of " + (dir_ / "a" / "same.tif").string() + ": the model sees the whole "
                             "photo"),
            std::string::npos)
      << flat.output;
  EXPECT_FALSE(fs::exists(dir_ / "flat" / "same.heatmap.png"));

  // eval --data (issue #21 item 10): the run's model on labelled photos from elsewhere,
  // the same metrics, the run folder untouched; photos of other classes are refused.
  const fs::path metrics = run_folder("seen") / "metrics.json";
  const std::string before = read_text(metrics);
  Result external = run("eval " + q(run_folder("seen")) + " --data " + q(photos.parent_path()));
  EXPECT_EQ(external.exit_code, 0) << external.output;
  EXPECT_NE(external.output.find("\nexternal     20 "), std::string::npos) << external.output;
  EXPECT_NE(external.output.find("confusion matrix"), std::string::npos) << external.output;
  EXPECT_EQ(read_text(metrics), before) << "eval --data changed the run folder";
  fs::create_directories(dir_ / "other" / "Photos");
  Result other = run("eval " + q(run_folder("seen")) + " --data " + q(dir_ / "other"));
  EXPECT_EQ(other.exit_code, 1) << other.output;

  // A file where the heatmap folder would go.
  std::ofstream(dir_ / "blocked") << "x";
  Result blocked = run("predict " + q(run_folder("seen")) + " " + q(dir_ / "a" / "same.tif") + " --heatmap " +
                       q(dir_ / "blocked" / "maps"));
  EXPECT_EQ(blocked.exit_code, 1) << blocked.output;
  EXPECT_NE(blocked.output.find("error: --heatmap " + (dir_ / "blocked" / "maps").string() +
                                ": cannot create the folder ("),
            std::string::npos)
      << blocked.output;
  EXPECT_EQ(blocked.output.find("Normal"), std::string::npos) << "predicted before the folder was made";
}

// Issue #22 LOW: metrics.json names the run folder absolutely, however the config and the
// resumed folder were named (relative to the working folder, with a trailing slash).
TEST_F(CliFolder, MetricsNameTheRunFolderAbsolutelyWhateverTheWorkingFolder) {
  tiny_config("relative");
  Result r = run("run relative.toml train.epochs=1", "cd " + q(dir_) + " && ");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const fs::path folder = run_folder("relative");
  auto recorded = [&] {
    return nlohmann::json::parse(read_text(folder / "metrics.json")).at("run_dir").get<std::string>();
  };
  EXPECT_EQ(recorded(), folder.string());
  const std::string relative = fs::relative(folder, dir_).string() + "/";
  Result resumed = run("run --resume " + relative + " --epochs 2", "cd " + q(dir_) + " && ");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(recorded(), folder.string());
}

TEST_F(CliFolder, RunWithTwoProcessesTrainsAsOneProcessAndWritesOneRunFolder) {
  // The baseline has neither dropout nor batch norm, so two ranks must train what one does.
  Result alone = run("run " + q(tiny_config("alone")));
  ASSERT_EQ(alone.exit_code, 0) << alone.output;
  Result two = run("run " + q(tiny_config("two")) + " --nproc 2 --timeout 60");
  ASSERT_EQ(two.exit_code, 0) << two.output;
  // Rank 0 alone logs and writes: one run folder, its log lines once.
  EXPECT_EQ(count(two.output, "run folder "), 1u) << two.output;
  // Both extended by one epoch: the ranks resume from rank 0's last.pt.
  Result resumed_alone = run("run --resume " + q(run_folder("alone")) + " --epochs 4");
  ASSERT_EQ(resumed_alone.exit_code, 0) << resumed_alone.output;
  // run.json records the processes; resuming in another number is refused.
  Result one_of_two = run("run --resume " + q(run_folder("two")) + " --epochs 4");
  EXPECT_EQ(one_of_two.exit_code, 1) << one_of_two.output;
  EXPECT_NE(one_of_two.output.find("run.json: this run trained in 2 processes and would resume in 1; "),
            std::string::npos)
      << one_of_two.output;
  EXPECT_NE(one_of_two.output.find("Resume with --nproc 2, or start a new run"), std::string::npos) << one_of_two.output;
  Result resumed_two = run("run --resume " + q(run_folder("two")) + " --epochs 4 --nproc 2 --timeout 60");
  ASSERT_EQ(resumed_two.exit_code, 0) << resumed_two.output;
  EXPECT_NE(resumed_two.output.find("resuming after epoch 3 of 4"), std::string::npos) << resumed_two.output;
  const auto a = history_rows(run_folder("alone") / "history.csv");
  const auto b = history_rows(run_folder("two") / "history.csv");
  ASSERT_EQ(a.size(), 4u);
  ASSERT_EQ(b.size(), a.size());
  for (size_t e = 0; e < a.size(); ++e)
    for (size_t c : {2u, 3u, 6u, 7u})  // train loss and accuracy, val loss and accuracy
      EXPECT_NEAR(b[e][c], a[e][c], 1e-4) << "epoch " << e + 1 << ", column " << c;
  EXPECT_TRUE(fs::exists(run_folder("two") / "report.html"));
}

TEST_F(CliFolder, RunRefusesDataParallelCrossValidationAndABadMaster) {
  Result folds = run("run " + q(tiny_config("folds", "[data.split]\nfolds = 2\n")) + " --nproc 2 --timeout 30");
  EXPECT_EQ(folds.exit_code, 1);
  // Said once, by the launcher before any rank starts (not by each rank after they met).
  EXPECT_EQ(count(folds.output, "a cross-validation does not train data-parallel yet"), 1u) << folds.output;
  EXPECT_EQ(folds.output.find("rank "), std::string::npos) << folds.output;
  Result master = run("run " + q(tiny_config("tiny")) + " --nproc 2 --nnodes 2 --node-rank 0 --master nowhere");
  EXPECT_EQ(master.exit_code, 1);
  EXPECT_NE(master.output.find("--master \"nowhere\": expected HOST:PORT"), std::string::npos) << master.output;
}

TEST_F(CliFolder, OverrideMistakesNameTheCommandLine) {
  const fs::path config = tiny_config("tiny");
  Result r = run("check --no-data " + q(config) + " train.epochs=abc train.epohcs=2 optimizer.lr=-1");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("command line: [train] epochs must be an integer (was string \"abc\")"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("command line: [train] unknown key \"epohcs\"; did you mean \"epochs\"?"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("command line: [optimizer] lr must be "), std::string::npos) << r.output;
  // The same for the other commands that take configs.
  Result keys = run("config-keys " + q(config) + " train.epohcs=2");
  EXPECT_EQ(keys.exit_code, 1) << keys.output;
  EXPECT_NE(keys.output.find("command line: [train] unknown key \"epohcs\""), std::string::npos) << keys.output;
  Result tune = run("tune " + q(config) + " train.epohcs=2");
  EXPECT_EQ(tune.exit_code, 1) << tune.output;
  EXPECT_NE(tune.output.find("command line: [train] unknown key \"epohcs\""), std::string::npos) << tune.output;
}

// Issue #22 LOW: a run says when stain normalisation left photos as they were (glass).
TEST_F(CliFolder, ARunSaysWhichPhotosStainNormalisationLeftAlone) {
  ASSERT_EQ(run("run " + q(tiny_config("seed_photos")) + " train.epochs=1").exit_code, 0);
  const fs::path synthetic = fs::temp_directory_path() / "bachlab_cli_test_cache" /
                             "synthetic-v1-32x24-5per-class-seed0" / "Photos";
  for (const std::string cls : {"Normal", "Benign", "InSitu", "Invasive"}) {
    fs::create_directories(dir_ / "photos" / cls);
    for (const auto& entry : fs::directory_iterator(synthetic / cls))
      fs::copy_file(entry.path(), dir_ / "photos" / cls / entry.path().filename());
  }
  cv::imwrite((dir_ / "photos" / "Normal" / "glass.png").string(), cv::Mat(24, 32, CV_8UC3, cv::Scalar(245, 245, 245)));
  const fs::path config = tiny_config("stained", "");
  Result r = run("run " + q(config) + " train.epochs=1 data.source=folder data.layout=folders data.root=" +
                 q(dir_ / "photos") + " data.stain_normalize=reinhard data.cache_dir=" + q(dir_ / "cache"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("warning: stain normalisation left 1 of 21 photos as they were: too little tissue"),
            std::string::npos)
      << r.output;
}

// Issue #21 item 1: folds from the command line over a base config's fractions train the
// whole cross-validation (its folds read the saved config back), and eval reads it too; a
// base's folds under fractions of the file extending it stay an error.
TEST_F(CliFolder, FoldsFromTheCommandLineReplaceABaseConfigsFractionsForTheWholeRun) {
  const fs::path base = tiny_config("base", "[data.split]\ntrain = 0.6\nval = 0.2\ntest = 0.2\n");
  const fs::path child = dir_ / "child.toml";
  std::ofstream(child) << "extends = \"" << base.string() << "\"\n[experiment]\nname = \"child\"\n";
  Result r = run("run " + q(child) + " data.split.folds=2 train.epochs=1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("warning: [data.split] folds = 2 (command line) replaces the train/val/test fractions of " +
                          base.string()),
            std::string::npos)
      << r.output;
  const fs::path folder = run_folder("child");
  EXPECT_TRUE(fs::exists(folder / "fold-2" / "metrics.json"));
  // Before the second fold: how long the rest of the cross-validation should take.
  EXPECT_TRUE(std::regex_search(r.output, std::regex("fold 2 of 2; the folds so far took [0-9.]+s each, about "
                                                     "[0-9.]+s left\n")))
      << r.output;
  EXPECT_EQ(read_text(folder / "config.toml").find("train = 0.6"), std::string::npos);
  Result again = run("eval " + q(folder));
  EXPECT_EQ(again.exit_code, 0) << again.output;

  const fs::path folds_base = tiny_config("folds_base", "[data.split]\nfolds = 2\n");
  const fs::path fractions_child = dir_ / "fractions_child.toml";
  std::ofstream(fractions_child) << "extends = \"" << folds_base.string()
                                 << "\"\n[data.split]\ntrain = 0.6\nval = 0.2\ntest = 0.2\n";
  Result contradiction = run("check --no-data " + q(fractions_child));
  EXPECT_EQ(contradiction.exit_code, 1) << contradiction.output;
  EXPECT_NE(contradiction.output.find("does not apply with folds = 2"), std::string::npos) << contradiction.output;
}

// Issue #21 item 7: a run resumed with --epochs records what ran, in every folder of a
// cross-validation, so eval (and a later resume or compare) see it.
TEST_F(CliFolder, AResumeWithMoreEpochsIsRecordedInTheRunFolder) {
  Result first = run("run " + q(tiny_config("longer", "[data.split]\nfolds = 2\n")) + " train.epochs=1");
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const fs::path folder = run_folder("longer");
  Result resumed = run("run --resume " + q(folder) + " --epochs 2");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  for (const fs::path& dir : {folder, folder / "fold-1", folder / "fold-2"})
    EXPECT_EQ(nlohmann::json::parse(read_text(dir / "run.json")).at("epochs_override"), 2) << dir;
  Result again = run("eval " + q(folder));
  ASSERT_EQ(again.exit_code, 0) << again.output;
  const auto params = nlohmann::json::parse(read_text(folder / "metrics.json")).at("params");
  EXPECT_NE(params.dump().find("[\"epochs\",\"2\"]"), std::string::npos) << params.dump();
}

// Issue #21 item 8: an unknown plugin name is one problem at its key, with no knock-on
// "unknown key" errors for the settings of the plugin that was meant.
TEST_F(CliFolder, AnUnknownPluginIsOneProblemAtItsKey) {
  const fs::path config = tiny_config("tiny");
  Result r = run("check --no-data " + q(config) + " model.plugin=baselin optimizer.plugin=adamm");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("2 problems in "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("command line: [model] plugin = \"baselin\" names no model plugin; did you mean "
                          "\"baseline\"?"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("command line: [optimizer] plugin = \"adamm\" names no optimizer plugin; did you mean "
                          "\"adam\"?"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("unknown key"), std::string::npos) << r.output;
}

// The data layer calls ExploreOptions::out "the output folder"; `explore` names its flag.
// Only explore's own option is renamed: the synthetic set it discovers first comes from
// the config.
TEST_F(CliFolder, ExploreNamesOutWhenItCannotWriteThere) {
  const fs::path config = tiny_config("tiny");
  std::ofstream(dir_ / "file") << "x";
  const fs::path out = dir_ / "file" / "report";
  Result r = run("explore " + q(config) + " --out " + q(out));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("error: " + out.string() +
                          ": cannot create the output folder (Not a directory); choose another --out\n"),
            std::string::npos)
      << r.output;
}

// Issue #22 LOW: a key given twice on the command line is refused (not "the last wins"),
// and an override whose key is malformed (here not UTF-8) is called an override, not a
// config file that cannot be opened.
TEST_F(CliFolder, AKeyGivenTwiceOrMalformedIsNamedAsAnOverride) {
  const fs::path config = tiny_config("tiny");
  Result twice = run("check --no-data " + q(config) + " train.epochs=2 train.epochs=3");
  EXPECT_EQ(twice.exit_code, 1) << twice.output;
  EXPECT_NE(twice.output.find("command line: train.epochs is given twice (2, then 3); give it once"),
            std::string::npos)
      << twice.output;
  // The shell's printf makes the byte 0xff (octal 377): not UTF-8 on its own.
  Result bytes = run("check --no-data " + q(config) + " \"$(printf 'train.\\377epochs=2')\"");
  EXPECT_EQ(bytes.exit_code, 1) << bytes.output;
  EXPECT_NE(bytes.output.find("\" is not an override; write KEY=VALUE"), std::string::npos) << bytes.output;
  EXPECT_EQ(bytes.output.find("cannot open"), std::string::npos) << bytes.output;
}

TEST_F(CliFolder, RunChecksEveryConfigBeforeTrainingAnyAndReportsEachErrorOnce) {
  const fs::path good = tiny_config("good");
  const fs::path typo = dir_ / "typo.toml";
  std::ofstream(typo) << read_text(good) << "[trian]\nseed = 1\n";
  Result r = run("run " + q(good) + " " + q(typo));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(count(r.output, "unknown table [trian]"), 1u) << r.output;
  EXPECT_NE(r.output.find("1 of 2 configs have problems; nothing was trained"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "runs" / "good")) << "the good config trained before the bad one was checked";
}

TEST_F(CliFolder, CheckListsThePhotosOfEachClassAndFailsWithoutThem) {
  const fs::path root = dir_ / "photos";
  const fs::path config = dir_ / "folder.toml";
  std::ofstream(config) << "[data]\nsource = \"folder\"\nlayout = \"folders\"\nroot = \"photos\"\n"
                           "classes = [\"Normal\", \"Benign\", \"InSitu\"]\nimage_size = 16\n"
                           "[model]\nplugin = \"baseline\"\nfilters = 4\nhidden_units = 8\n";
  Result missing = run("check " + q(config));
  EXPECT_EQ(missing.exit_code, 1) << missing.output;
  EXPECT_NE(missing.output.find(root.string() + ": dataset folder not found ([data] root set at " + config.string() +
                                ":4)"),
            std::string::npos)
      << missing.output;
  EXPECT_EQ(missing.output.find("OK"), std::string::npos) << missing.output;

  const cv::Mat photo(8, 8, CV_8UC3, cv::Scalar(200, 100, 150));
  for (const auto& [name, n] : std::vector<std::pair<std::string, int>>{{"Normal", 2}, {"Benign", 1}}) {
    fs::create_directories(root / name);
    for (int i = 0; i < n; ++i) cv::imwrite((root / name / (std::to_string(i) + ".png")).string(), photo);
  }
  Result no_class = run("check " + q(config));
  EXPECT_EQ(no_class.exit_code, 1) << no_class.output;
  EXPECT_NE(no_class.output.find((root / "InSitu").string() + ": class folder not found"), std::string::npos)
      << no_class.output;

  fs::create_directories(root / "InSitu");
  cv::imwrite((root / "InSitu" / "a.png").string(), photo);
  Result ok = run("check " + q(config));
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("\n  data: 4 photos in " + root.string() + ": Normal 2, Benign 1, InSitu 1\n"),
            std::string::npos)
      << ok.output;

  fs::remove_all(root);
  Result skipped = run("check --no-data " + q(config));
  EXPECT_EQ(skipped.exit_code, 0) << skipped.output;
  EXPECT_NE(skipped.output.find("data not checked (--no-data)"), std::string::npos) << skipped.output;
}

TEST(Cli, UsageErrorsExitWith2AndAMistypedOptionGetsASuggestion) {
  Result typo = run("run --epoch 3 configs/quickstart.toml");
  EXPECT_EQ(typo.exit_code, 2) << typo.output;
  EXPECT_NE(typo.output.find("bachlab run: unknown option --epoch; did you mean --epochs?"), std::string::npos)
      << typo.output;
  Result no_config = run("run");
  EXPECT_EQ(no_config.exit_code, 2) << no_config.output;
  EXPECT_NE(no_config.output.find("bachlab run needs a config file"), std::string::npos) << no_config.output;
  Result no_dir = run("eval");
  EXPECT_EQ(no_dir.exit_code, 2) << no_dir.output;
  Result bad_value = run("plugins --kind modle");
  EXPECT_EQ(bad_value.exit_code, 2) << bad_value.output;
}

TEST(Cli, BareProgramPrintsTheCommandList) {
  Result r = run("");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  for (const char* command : {"run", "check", "eval", "tune", "bench", "explore", "config-keys"})
    EXPECT_NE(r.output.find("\n  " + std::string(command) + " "), std::string::npos) << command << "\n" << r.output;
}

// `bench --kind model` benchmarks every model plugin of the build (the transfer backbones
// randomly initialised, the torchscript plugin on a module the bench makes), skips with its
// reason one that cannot be built, and ends normally. Tiny sizes and --min-time keep it quick.
TEST_F(CliFolder, BenchModelCoversEveryModelPluginAndSkipsOnesThatCannotBeBuilt) {
  if (!fs::exists(fs::path(BACHLAB_BINARY_DIR) / "bench" / "bench_plugins")) GTEST_SKIP() << "bench_plugins is not built";
  std::vector<std::string> models;
  for (const auto& entry : fs::directory_iterator(BACHLAB_TEST_PLUGIN_DIR)) {
    const std::string file = entry.path().filename().string();
    if (file.rfind("bachlab-model-", 0) == 0 && entry.path().extension() == ".so")
      models.push_back(file.substr(14, file.size() - 14 - 3));
  }
  ASSERT_GE(models.size(), 9u);
  const fs::path out = dir_ / "models.json";
  Result r = run("bench --kind model --size 32 --batch 2 --threads 1 --min-time 0.01 --out " + q(out),
                 std::string("BACHLAB_PLUGIN_PATH='") + FIXTURE_PLUGIN_DIR + "' ");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("skipped model/fixture_throws: it cannot be built for benchmarking: throwing model: refuses "
                          "to build (as designed for the test)\n"),
            std::string::npos)
      << r.output;
  // A std::exception from a plugin reaches the bench wrapped by the registry, which names it.
  EXPECT_NE(r.output.find("skipped model/fixture_throws_std: it cannot be built for benchmarking: model plugin "
                          "\"fixture_throws_std\" ("),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("failed: out of cheese\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("2 model plugins were skipped (see above)"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("terminate called"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("Library was built as DEBUG"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Time: wall-clock time per iteration"), std::string::npos) << r.output;
  const std::string json = read_text(out);
  for (const auto& model : models)
    for (const char* benchmark : {"forward", "train_step"}) {
      const std::string name = "\"name\": \"model/" + model + "/" + benchmark + "/real_time\"";
      const size_t at = json.find(name);
      ASSERT_NE(at, std::string::npos) << name << " missing:\n" << r.output;
      const size_t end = json.find('}', at);
      EXPECT_EQ(json.substr(at, end - at).find("error_occurred"), std::string::npos) << json.substr(at, end - at);
    }
  EXPECT_NE(json.find("\"label\": \"random init (pretrained = false, mode = finetune)\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"label\": \"a 3x3 conv TorchScript module made by the bench\""), std::string::npos) << json;
}

TEST(Cli, BenchFilterThatMatchesNothingFails) {
  if (!fs::exists(fs::path(BACHLAB_BINARY_DIR) / "bench" / "bench_plugins")) GTEST_SKIP() << "bench_plugins is not built";
  Result r = run("bench --kind optimizer --filter 'no_such_benchmark'");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("no benchmark matched of kind optimizer"), std::string::npos) << r.output;
}

TEST_F(CliFolder, BenchCompareAlignsNamesFoundInEitherFile) {
  std::ofstream(dir_ / "a.json") << R"({"benchmarks": [{"name": "x", "real_time": 2.0, "time_unit": "ms"}]})";
  std::ofstream(dir_ / "b.json")
      << R"({"benchmarks": [{"name": "a/much/longer/name", "real_time": 1.0, "time_unit": "ms"}]})";
  Result r = run("bench compare " + q(dir_ / "a.json") + " " + q(dir_ / "b.json"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.substr(0, r.output.find("BEFORE, AFTER: median")),
            "BENCHMARK               BEFORE  SPREAD       AFTER  SPREAD  SPEEDUP\n"
            "x                         2 ms       -           -                -\n"
            "a/much/longer/name           -                1 ms       -        -\n");
}

// `compare` reads run folders made by separate `run` calls: the settings that differ, the
// metrics, and (with --html) their validation curves overlaid.
TEST_F(CliFolder, CompareShowsTheSettingsThatDifferAndOverlaysTheCurves) {
  const fs::path config = tiny_config("tiny");
  ASSERT_EQ(run("run " + q(config) + " train.epochs=1 optimizer.lr=0.01").exit_code, 0);
  ASSERT_EQ(run("run " + q(config) + " train.epochs=2 optimizer.lr=0.001").exit_code, 0);
  std::vector<fs::path> runs;
  for (const auto& entry : fs::directory_iterator(dir_ / "runs" / "tiny")) runs.push_back(entry.path());
  std::sort(runs.begin(), runs.end());
  ASSERT_EQ(runs.size(), 2u);
  const fs::path html = dir_ / "compare.html";
  Result r = run("compare " + q(runs[0]) + " " + q(runs[1]) + " --html " + q(html));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::istringstream lines(r.output);
  std::string header, first, second;
  std::getline(lines, header), std::getline(lines, first), std::getline(lines, second);
  EXPECT_TRUE(std::regex_search(header, std::regex("^run +optimizer\\.lr +train\\.epochs +val acc +test acc +"
                                                   "test AUROC micro +test AUROC macro +epochs +time$")))
      << r.output;
  EXPECT_TRUE(std::regex_search(first, std::regex("^tiny " + runs[0].filename().string() +
                                                  " +0\\.01 +1 +[-0-9.]+ +[-0-9.]+ +[-0-9.]+ +[-0-9.]+ +1 +")))
      << r.output;
  EXPECT_TRUE(std::regex_search(second, std::regex(" 0\\.001 +2 +.* 2 +[0-9.]+s$"))) << r.output;
  const std::string page = read_text(html);
  EXPECT_EQ(count(page, "<img alt=\"validation "), 2u);
  // The settings that differ get a table of their own on the page: a row each, a column per run.
  EXPECT_NE(page.find("<tr><td>optimizer.lr</td><td>0.01</td><td>0.001</td></tr>"), std::string::npos) << page;
  EXPECT_NE(page.find("<tr><td>train.epochs</td><td>1</td><td>2</td></tr>"), std::string::npos) << page;

  Result one = run("compare " + q(runs[0]));
  EXPECT_EQ(one.exit_code, 2) << one.output;
  Result not_a_run = run("compare " + q(runs[0]) + " " + q(dir_));
  EXPECT_EQ(not_a_run.exit_code, 1) << not_a_run.output;
  EXPECT_NE(not_a_run.output.find(dir_.string() + ": not a run folder (it has no run.json or metrics.json)"),
            std::string::npos)
      << not_a_run.output;
}

}  // namespace
