// Runs the built `bachlab` program and reads what a user would read.
#include <bachlab/sdk/plugin.h>

#include <gtest/gtest.h>
#include <torch/version.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <utility>
#include <vector>

namespace {

namespace fs = std::filesystem;

struct Result {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

Result run(const std::string& arguments) {
  const std::string command = std::string("'") + BACHLAB_BINARY_DIR + "/bachlab' " + arguments + " 2>&1";
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
  Result r = run("check" + files);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("problem"), std::string::npos) << r.output;
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
  Result r = run("check" + quoted_configs());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("problem"), std::string::npos) << r.output;
}

TEST_F(TransferConfigs, MissingWeightsFileSaysHowToExportIt) {
  for (const auto& config : configs_) {
    Result r = run("check '" + config.string() + "'");
    EXPECT_EQ(r.exit_code, 1) << config << "\n" << r.output;
    // Only the weights are missing: one problem, naming the file and the export command.
    EXPECT_NE(r.output.find("1 problem in " + config.string()), std::string::npos) << r.output;
    // Relative to the config that names it, as written.
    EXPECT_NE(r.output.find("[model] weights \"" + (root_ / "configs").string() + "/../weights/"), std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("cannot be opened (no such file); export ImageNet weights on a machine with internet "
                            "with \"/usr/bin/python3 scripts/export_torchvision.py "),
              std::string::npos)
        << r.output;
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
  EXPECT_NE(r.output.find("no optimizer plugin named \"adamw\"; did you mean \"adam\"?"), std::string::npos)
      << r.output;
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
  EXPECT_TRUE(std::regex_search(r.output, std::regex("\n\\[train\\]\n(  .*\n)*  epochs +integer +20 +1\\.\\.100000\n")))
      << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex("\nmodel4a \\(model plugin, in \\[model\\]\\)\n(  .*\n)*  filters +"
                                                     "integer or list of integers +\\[32, 64, 128\\] +1\\.\\.4096\n")))
      << r.output;
  EXPECT_LT(r.output.find("[train]\n"), r.output.find("model4a (model plugin"));
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
  const fs::path folder = fs::temp_directory_path() / "bachlab_cli_bench";
  fs::remove_all(folder);
  fs::create_directories(folder);
  Result r = run("bench --kind optimizer --filter 'optimizer/sgd' --out " + (folder / "run.json").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("optimizer/sgd/step"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("optimizer/adam"), std::string::npos) << "--filter was not applied:\n" << r.output;
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
  EXPECT_EQ(r.output,
            "BENCHMARK            BEFORE       AFTER  SPEEDUP\n"
            "gone                   5 us           -        -\n"
            "model/a/forward        2 ms      500 us    4.00x\n"
            "new                       -       1.5 s        -\n"
            "SPEEDUP = BEFORE time / AFTER time per iteration (real time); above 1 means AFTER is faster.\n");
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

}  // namespace
