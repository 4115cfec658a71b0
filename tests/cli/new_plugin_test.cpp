// `bachlab new-plugin`'s folder writer: names it accepts, what it writes, and that it never
// overwrites or leaves a half-written folder. Building what it writes is the install test's
// job (tests/install/new_plugin_test.sh).
#include "host/cli/new_plugin.h"

#include <bachlab/sdk/error.h>

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using bachlab::cli::check_new_plugin_args;
using bachlab::cli::write_new_plugin;

const fs::path kTemplates = fs::path(BACHLAB_SOURCE_DIR) / "sdk" / "templates";

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const bachlab::Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::string slurp(const fs::path& file) {
  std::ostringstream text;
  text << std::ifstream(file).rdbuf();
  return text.str();
}

class NewPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("bachlab_new_plugin_test_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  // Everything in dir_, to show nothing else (no temporary folder) was left there.
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& entry : fs::directory_iterator(dir_)) out.push_back(entry.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
  fs::path dir_;
};

TEST(NewPluginArgs, RejectsAnUnknownKindWithASuggestion) {
  EXPECT_EQ(error_of([] { check_new_plugin_args("modle", "x"); }),
            "unknown plugin kind \"modle\"; did you mean \"model\"? (kinds: model, augmentation, optimizer, tuner)");
  EXPECT_EQ(error_of([] { check_new_plugin_args("loss", "x"); }),
            "unknown plugin kind \"loss\" (kinds: model, augmentation, optimizer, tuner)");
}

TEST(NewPluginArgs, AcceptsLowercaseIdentifiersOnly) {
  for (const char* good : {"a", "my_net", "net2", "x_1_y"}) EXPECT_NO_THROW(check_new_plugin_args("model", good));
  for (const std::string& bad :
       std::vector<std::string>{"", "MyNet", "2net", "_net", "my-net", "my net", "net.v2", std::string(65, 'a')})
    EXPECT_EQ(error_of([&] { check_new_plugin_args("model", bad); }),
              "plugin name \"" + bad +
                  "\" is not valid: it must start with a lowercase letter and have only lowercase letters, digits "
                  "and _, at most 64 characters (it names the source file, the CMake target and the .so)");
}

TEST_F(NewPluginTest, WritesEveryTemplateWithTheNameFilledIn) {
  for (const std::string kind : {"model", "augmentation", "optimizer", "tuner"}) {
    const std::string name = "my_" + kind;
    const fs::path folder = write_new_plugin(kind, name, dir_, kTemplates);
    EXPECT_EQ(folder, dir_ / name);
    std::vector<std::string> files;
    for (const auto& entry : fs::directory_iterator(folder)) {
      files.push_back(entry.path().filename().string());
      EXPECT_EQ(slurp(entry.path()).find('@'), std::string::npos) << entry.path() << " kept a placeholder";
    }
    std::sort(files.begin(), files.end());
    EXPECT_EQ(files, (std::vector<std::string>{"CMakeLists.txt", "README.md", name + ".cpp", "test_" + name + ".cpp"}));
    EXPECT_NE(slurp(folder / (name + ".cpp")).find("BACHLAB_PLUGIN(" + kind + ", \"" + name + "\""), std::string::npos);
    EXPECT_NE(slurp(folder / "CMakeLists.txt").find("bachlab_add_plugin(" + name + " KIND " + kind + " "),
              std::string::npos);
    EXPECT_NE(slurp(folder / "README.md").find("build/plugins/bachlab-" + kind + "-" + name + ".so"), std::string::npos);
  }
}

TEST_F(NewPluginTest, NeverOverwritesAnExistingFolder) {
  fs::create_directories(dir_ / "mine");
  std::ofstream(dir_ / "mine" / "keep.txt") << "mine";
  EXPECT_EQ(error_of([&] { write_new_plugin("model", "mine", dir_, kTemplates); }),
            (dir_ / "mine").string() + ": already exists; new-plugin never overwrites, so choose another NAME or --dir");
  EXPECT_EQ(slurp(dir_ / "mine" / "keep.txt"), "mine");
  EXPECT_EQ(entries(), std::vector<std::string>{"mine"});
}

TEST_F(NewPluginTest, LeavesNothingBehindWhenATemplateIsMissing) {
  // A templates folder with common/ but no model/: the error comes after the checks.
  const fs::path broken = dir_ / "templates";
  fs::create_directories(broken);
  fs::copy(kTemplates / "common", broken / "common");
  EXPECT_EQ(error_of([&] { write_new_plugin("model", "net", dir_ / "out", broken); }),
            (broken / "model").string() + ": plugin template folder is missing; reinstall bachlab (cmake --install)");
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

TEST_F(NewPluginTest, CreatesTheParentFolder) {
  EXPECT_EQ(write_new_plugin("tuner", "t", dir_ / "a" / "b", kTemplates), dir_ / "a" / "b" / "t");
  EXPECT_TRUE(fs::exists(dir_ / "a" / "b" / "t" / "t.cpp"));
  EXPECT_EQ(entries(), std::vector<std::string>{"a"});
}

}  // namespace
