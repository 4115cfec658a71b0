// Runs the built `bachlab` program and reads what a user would read.
#include <bachlab/sdk/plugin.h>

#include <gtest/gtest.h>
#include <torch/version.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

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
  // base.toml is only ever extended, and the transfer configs need exported weights (they
  // have their own tests); every other config must validate with the in-tree plugins.
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
