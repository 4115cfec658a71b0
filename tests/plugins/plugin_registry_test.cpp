// The plugin registry against real plugins built by CMake: the in-tree optimizers, and
// fixtures that are broken in one way each. Users read these messages, so they are pinned.
#include "host/plugins/registry.h"

#include <bachlab/sdk/param_table.h>
#include <gtest/gtest.h>

#include <cstdlib>

#include <dlfcn.h>
#include <unistd.h>

namespace bachlab::host {
namespace {

namespace fs = std::filesystem;
const fs::path fixture_dir = BACHLAB_FIXTURE_PLUGIN_DIR;
const fs::path plugin_dir = BACHLAB_TEST_PLUGIN_DIR;

std::string fixture(const std::string& file) { return (fixture_dir / file).string(); }

std::string message_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

class PluginRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override { registry.scan({fixture_dir}); }
  PluginRegistry registry;
};

TEST_F(PluginRegistryTest, AcceptsGoodPluginsBesideBrokenOnes) {
  std::vector<std::string> names;
  for (const auto& info : registry.plugins()) names.push_back(info.kind + "/" + info.name);
  EXPECT_EQ(names, (std::vector<std::string>{"model/fixture_throws", "model/fixture_throws_std",
                                             "optimizer/fixture_good"}));
}

TEST_F(PluginRegistryTest, RejectsEachBrokenFileWithItsReason) {
  std::vector<std::string> reasons;
  for (const auto& r : registry.rejections()) reasons.push_back(r.reason);
  const std::string abi = host_abi_version();
  const std::string next_major = std::to_string(BACHLAB_ABI_MAJOR + 1) + "." + std::to_string(BACHLAB_ABI_MINOR);
  const std::string next_minor = std::to_string(BACHLAB_ABI_MAJOR) + "." + std::to_string(BACHLAB_ABI_MINOR + 1);
  const std::string old_major = std::to_string(BACHLAB_ABI_MAJOR - 1) + "." + std::to_string(BACHLAB_ABI_MINOR);
  std::vector<std::string> expected = {
      fixture("bachlab-empty.so") + ": empty file (0 bytes); expected a shared library built with BACHLAB_PLUGIN",
      fixture("bachlab-not-a-library.so") + ": not a loadable shared library: invalid ELF header",
      fixture("bachlab-optimizer-fixture_abi2.so") + ": plugin ABI 2.0 does not match host ABI " + abi +
          " (major versions differ); rebuild the plugin against bachlab SDK " + std::to_string(BACHLAB_ABI_MAJOR) +
          ".x",
      fixture("bachlab-optimizer-fixture_abi_major.so") + ": plugin ABI " + next_major + " does not match host ABI " +
          abi + " (major versions differ); rebuild the plugin against bachlab SDK " +
          std::to_string(BACHLAB_ABI_MAJOR) + ".x",
      fixture("bachlab-optimizer-fixture_abi_minor.so") + ": plugin ABI " + next_minor + " is newer than host ABI " +
          abi + "; rebuild the plugin against bachlab SDK " + abi + " or update bachlab",
      fixture("bachlab-optimizer-fixture_abi_old_major.so") + ": plugin ABI " + old_major +
          " does not match host ABI " + abi + " (major versions differ); rebuild the plugin against bachlab SDK " +
          std::to_string(BACHLAB_ABI_MAJOR) + ".x",
      fixture("bachlab-optimizer-fixture_cxx_abi.so") + ": plugin built with libc++ ABI 1 (Clang 99.0.0), host uses " +
          BACHLAB_CXX_ABI + " (" + BACHLAB_COMPILER + "); every std::string crossing between them would be misread, "
          "so rebuild the plugin with the host's standard library and ABI setting",
      fixture("bachlab-optimizer-fixture_data_entry.so") +
          ": \"bachlab_plugin_descriptor\" is data (64 bytes), not a function; expected a library built with "
          "BACHLAB_PLUGIN",
      fixture("bachlab-optimizer-fixture_kind.so") +
          ": unknown plugin kind \"widget\"; expected model, augmentation, optimizer or tuner",
      fixture("bachlab-optimizer-fixture_no_entry.so") +
          ": no entry point \"bachlab_plugin_descriptor\"; expected a library built with BACHLAB_PLUGIN",
      fixture("bachlab-optimizer-fixture_null.so") +
          ": entry point \"bachlab_plugin_descriptor\" returned null; the plugin failed to initialise",
      fixture("bachlab-optimizer-fixture_torch.so") + ": plugin built against LibTorch 0.0.0, host uses " +
          host_torch_version() + "; rebuild the plugin with the host's LibTorch",
  };
  EXPECT_EQ(reasons, expected);
}

TEST_F(PluginRegistryTest, ListingShowsPluginsThenRejectionsThenFolders) {
  std::string listing = format_plugin_listing(registry, "optimizer");
  std::string expected =
      "KIND       NAME          VERSION  DESCRIPTION   FILE\n"
      "optimizer  fixture_good  0.0.1    test fixture  " +
      fixture("bachlab-optimizer-fixture_good.so") + "\n\nRejected (12):\n";
  for (const auto& r : registry.rejections()) expected += "  " + r.reason + "\n";
  expected += "\nSearched: " + fixture_dir.string() + "\n";
  EXPECT_EQ(listing, expected);
  EXPECT_EQ(format_plugin_listing(registry, "tuner").substr(0, 24), "No tuner plugins found.\n");
}

TEST_F(PluginRegistryTest, PluginErrorIsShownAsIs) {
  sdk::ParamTable params("[model]");
  EXPECT_EQ(message_of([&] { registry.create_model("fixture_throws", {}, params); }),
            "throwing model: refuses to build (as designed for the test)");
}

TEST_F(PluginRegistryTest, OtherExceptionsAreWrappedWithPluginAndFile) {
  sdk::ParamTable params("[model]");
  EXPECT_EQ(message_of([&] { registry.create_model("fixture_throws_std", {}, params); }),
            "model plugin \"fixture_throws_std\" (" + fixture("bachlab-model-fixture_throws_std.so") +
                ") failed: out of cheese");
}

TEST_F(PluginRegistryTest, ParamProblemsComeBeforeWhatFollowedFromThem) {
  sdk::ParamTable params("[model]");
  params.set("units", std::string("eight"), {"exp.toml", 4});
  params.set("unitz", int64_t{3}, {"exp.toml", 5});
  EXPECT_EQ(message_of([&] { registry.create_model("fixture_throws", {}, params); }),
            "exp.toml:4: [model] units must be an integer (was string \"eight\")\n"
            "exp.toml:5: [model] unknown key \"unitz\"; did you mean \"units\"?");
}

TEST_F(PluginRegistryTest, UnknownNameSuggestsTheClosest) {
  sdk::ParamTable params("[optimizer]");
  EXPECT_EQ(message_of([&] { registry.create_optimizer("fixture_god", {}, params); }),
            "no optimizer plugin named \"fixture_god\"; did you mean \"fixture_good\"?; available: fixture_good "
            "(searched: " + fixture_dir.string() + ")");
}

// Not a PluginRegistryTest: that fixture's registry holds the same library, which would
// keep it loaded whether or not objects hold it themselves.
TEST(PluginLifetime, ObjectsOutliveTheRegistryThatMadeThem) {
  const fs::path file = fixture_dir / "bachlab-optimizer-fixture_good.so";
  // Whether the library is mapped now (RTLD_NOLOAD only finds it; the handle is given back).
  auto loaded = [&] {
    void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_NOLOAD);
    if (handle) dlclose(handle);
    return handle != nullptr;
  };
  ASSERT_FALSE(loaded()) << "something else holds the library, so this test could not fail";
  auto weight = torch::ones({3}, torch::requires_grad());
  std::shared_ptr<torch::optim::Optimizer> optimizer;
  {
    PluginRegistry local;
    local.load(file);
    sdk::ParamTable params("[optimizer]");
    optimizer = local.create_optimizer("fixture_good", {{"all", {weight}}}, params);
  }
  // The registry (and its handle on the library) is gone; the optimizer's code must still be loaded.
  EXPECT_TRUE(loaded()) << "the library was unloaded while an optimizer made by it lived";
  weight.sum().backward();
  optimizer->step();
  EXPECT_TRUE(torch::allclose(weight, torch::full({3}, 0.9)));
  optimizer.reset();
  // The last object gone, the library goes too: so the check above could have failed.
  EXPECT_FALSE(loaded()) << "the library stays loaded for ever, so this test proves nothing";
}

TEST_F(PluginRegistryTest, ShadowedNameIsRejected) {
  registry.load(fixture_dir / "bachlab-optimizer-fixture_good.so");
  EXPECT_EQ(registry.rejections().back().reason,
            fixture("bachlab-optimizer-fixture_good.so") + ": optimizer plugin \"fixture_good\" is already provided by " +
                fixture("bachlab-optimizer-fixture_good.so") + "; this one is ignored");
}

TEST(PluginWarnings, WorldWritableFoldersAndFilesAreListed) {
  const fs::path folder = fs::temp_directory_path() / ("bachlab_plugin_warning_" + std::to_string(::getpid()));
  fs::remove_all(folder);
  fs::create_directories(folder);
  fs::copy_file(fixture_dir / "bachlab-optimizer-fixture_good.so", folder / "good.so");
  fs::permissions(folder, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
  {
    PluginRegistry safe;
    safe.scan({folder});
    EXPECT_TRUE(safe.warnings().empty());
  }
  fs::permissions(folder, fs::perms::others_write, fs::perm_options::add);
  fs::permissions(folder / "good.so", fs::perms::others_write, fs::perm_options::add);
  PluginRegistry registry;
  registry.scan({folder});
  EXPECT_EQ(registry.plugins().size(), 1u) << "a warning does not reject the plugin";
  EXPECT_EQ(registry.warnings(),
            (std::vector<std::string>{
                folder.string() + ": this plugin folder is writable by every user, who could make bachlab run their "
                                  "code; remove that permission (chmod o-w)",
                (folder / "good.so").string() + ": this plugin file is writable by every user, who could make bachlab "
                                                "run their code; remove that permission (chmod o-w)"}));
  EXPECT_NE(format_plugin_listing(registry).find("\nWarnings (2):\n  " + registry.warnings()[0] + "\n"),
            std::string::npos);
  fs::remove_all(folder);
}

TEST(PluginSearchPath, ConfigFoldersThenEnvironmentNeverTheWorkingDirectory) {
  setenv("BACHLAB_PLUGIN_PATH", "/env/a::/env/b:", 1);
  auto path = plugin_search_path({"/from/config"});
  unsetenv("BACHLAB_PLUGIN_PATH");
  std::vector<fs::path> tail(path.end() - 3, path.end());
  EXPECT_EQ(tail, (std::vector<fs::path>{"/from/config", "/env/a", "/env/b"}));
  for (const auto& p : path) EXPECT_NE(p, fs::path("")) << "an empty entry would mean the working directory";
}

TEST(PluginSearchPath, MissingFolderIsReported) {
  PluginRegistry registry;
  registry.scan({"/no/such/folder"});
  ASSERT_EQ(registry.rejections().size(), 1u);
  EXPECT_EQ(registry.rejections()[0].reason, "/no/such/folder: plugin folder does not exist or is not a folder");
}

// The in-tree optimizer plugins, end to end through the SDK.
class OptimizerPluginTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { registry.scan({plugin_dir}); }
  PluginRegistry registry;
};

TEST_P(OptimizerPluginTest, StepsAndAppliesGroupLearningRates) {
  torch::manual_seed(0);
  auto a = torch::randn({4}, torch::requires_grad());
  auto b = torch::randn({4}, torch::requires_grad());
  sdk::ParamTable params("[optimizer]");
  params.set("lr", 0.01);
  // The optimizer owns each group's rate: lr times the group's lr_scale.
  auto optimizer = registry.create_optimizer(GetParam(), {{"head", {a}, true, 1.0}, {"finetune", {b}, true, 0.1}}, params);
  ASSERT_EQ(optimizer->param_groups().size(), 2u);
  EXPECT_DOUBLE_EQ(optimizer->param_groups()[0].options().get_lr(), 0.01);
  EXPECT_DOUBLE_EQ(optimizer->param_groups()[1].options().get_lr(), 0.001);
  auto before = a.detach().clone();
  (a * a).sum().add((b * b).sum()).backward();
  optimizer->step();
  EXPECT_FALSE(torch::equal(before, a.detach()));
}

TEST_P(OptimizerPluginTest, RejectsBadSettingsWithLocation) {
  sdk::ParamTable params("[optimizer]");
  params.set("lr", -1.0, {"exp.toml", 7});
  params.set("weight_decai", 0.1, {"exp.toml", 8});
  auto w = torch::zeros({1}, torch::requires_grad());
  EXPECT_EQ(message_of([&] { registry.create_optimizer(GetParam(), {{"all", {w}}}, params); }),
            "exp.toml:7: [optimizer] lr must be in 1e-12..10.0 (was -1.0)\n"
            "exp.toml:8: [optimizer] unknown key \"weight_decai\"; did you mean \"weight_decay\"?");
}

INSTANTIATE_TEST_SUITE_P(InTree, OptimizerPluginTest, ::testing::Values("adam", "rmsprop", "sgd"));

TEST(SgdPlugin, NesterovNeedsMomentum) {
  PluginRegistry registry;
  registry.scan({plugin_dir});
  sdk::ParamTable params("[optimizer]");
  params.set("nesterov", true, {"exp.toml", 3});
  auto w = torch::zeros({1}, torch::requires_grad());
  EXPECT_EQ(message_of([&] { registry.create_optimizer("sgd", {{"all", {w}}}, params); }),
            "exp.toml:3: [optimizer] nesterov needs momentum > 0 and dampening = 0 (was momentum 0.0, dampening 0.0)");
}

}  // namespace
}  // namespace bachlab::host
