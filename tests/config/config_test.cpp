// Config loading: extends chains, merging, and the messages a user reads for bad input.
#include "host/config/choice.h"
#include "host/config/config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

namespace bachlab::host {
namespace {

namespace fs = std::filesystem;

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / ("bachlab_config_test_" + std::to_string(::getpid()) + "_" +
                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }

  fs::path write(const std::string& name, const std::string& text) {
    fs::path path = dir / name;
    std::ofstream(path) << text;
    return path;
  }

  std::string message_of(const std::function<void()>& call) {
    try {
      call();
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  }

  fs::path dir;
};

TEST_F(ConfigTest, ExtendsMergesTablesAndChildWins) {
  write("base.toml",
        "[train]\nepochs = 10\nbatch_size = 32\n\n[model]\nplugin = \"model2\"\nfilters = 32\n\n"
        "[[augment]]\nplugin = \"flip\"\n");
  auto child = write("child.toml",
                     "extends = \"base.toml\"\n[train]\nepochs = 3\n[model]\nplugin = \"model4a\"\n"
                     "[[augment]]\nplugin = \"color\"\n[[augment]]\nplugin = \"stain\"\n");
  Config config = Config::load(child);
  auto& train = config.table("train");
  EXPECT_EQ(train.get_int("epochs", 0), 3);
  EXPECT_EQ(train.get_int("batch_size", 0), 32);
  auto& model = config.table("model");
  EXPECT_EQ(model.get_string("plugin", ""), "model4a");
  EXPECT_EQ(model.get_int("filters", 0), 32);
  auto& augment = config.array("augment");
  ASSERT_EQ(augment.size(), 2u) << "an array of tables is replaced, not appended to";
  EXPECT_EQ(augment[0].get_string("plugin", ""), "color");
  EXPECT_EQ(augment[1].get_string("plugin", ""), "stain");
  EXPECT_TRUE(config.problems().empty());
}

TEST_F(ConfigTest, ProblemsNameTheFileThatWroteTheValue) {
  write("base.toml", "[train]\n\nepochs = \"many\"\n");
  auto child = write("child.toml", "extends = \"base.toml\"\n[train]\nbatch_size = 0\n");
  Config config = Config::load(child);
  auto& train = config.table("train");
  train.get_int("epochs", 10, {1, 100000});
  train.get_int("batch_size", 32, {1, 4096});
  EXPECT_EQ(message_of([&] { config.check(); }),
            "2 problems in " + child.string() + ":\n" +
                "  " + (dir / "base.toml").string() + ":3: [train] epochs must be an integer (was string \"many\")\n" +
                "  " + child.string() + ":3: [train] batch_size must be in 1..4096 (was 0)");
}

TEST_F(ConfigTest, AllProblemsInOnePassWithSuggestions) {
  auto path = write("exp.toml",
                    "typo_top = 1\n"
                    "[trian]\nepochs = 3\n"
                    "[model]\nplugin = \"model4a\"\n"
                    "[train]\nepohcs = 5\ndevice = \"gpu\"\n");
  Config config = Config::load(path);
  auto& train = config.table("train");
  train.get_int("epochs", 10);
  train.get_string("device", "cpu", {"cpu", "cuda"});
  config.table("model").get_string("plugin", "");
  const std::string f = path.string();
  EXPECT_EQ(message_of([&] { config.check(); }),
            "4 problems in " + f + ":\n" +
                "  " + f + ":1: unknown top-level key \"typo_top\"; settings belong in a table such as [train]\n" +
                "  " + f + ":2: unknown table [trian]; did you mean [train]?\n" +
                "  " + f + ":7: [train] unknown key \"epohcs\"; did you mean \"epochs\"?\n" +
                "  " + f + ":8: [train] device must be one of \"cpu\", \"cuda\" (was \"gpu\"); did you mean \"cpu\"?");
}

// A word key read into an enum: the reader's choices, problem and fallback are get_string's,
// and the word comes back from the value.
TEST_F(ConfigTest, AChoiceReadsAWordIntoAnEnumAndNamesTheWordsWhenItIsNone) {
  enum class Shade { light, dark };
  const Choice<Shade> shades{{"light", Shade::light}, {"dark", Shade::dark}};
  Config config = Config::parse("[look]\nshade = \"dark\"\nother = \"dim\"\n", "look.toml");
  auto& look = config.table("look");
  EXPECT_EQ(shades.read(look, "shade", Shade::light), Shade::dark);
  EXPECT_EQ(shades.read(look, "absent", Shade::dark), Shade::dark);
  EXPECT_EQ(shades.read(look, "other", Shade::light), Shade::light) << "a bad word gives the fallback";
  EXPECT_EQ(message_of([&] { config.check(); }),
            "1 problem in look.toml:\n  look.toml:3: [look] other must be one of \"light\", \"dark\" (was \"dim\")");
  EXPECT_EQ(shades.name(Shade::dark), "dark");
  EXPECT_EQ(shades.names(), (std::vector<std::string>{"light", "dark"}));
  EXPECT_EQ(message_of([&] { shades.value("dusk"); }), "expected one of \"light\", \"dark\", found \"dusk\"");
}

TEST_F(ConfigTest, SyntaxErrorNamesFileAndLine) {
  auto path = write("broken.toml", "[train]\nepochs = 3\nbatch_size = = 4\n");
  std::string message = message_of([&] { Config::load(path); });
  EXPECT_EQ(message.rfind(path.string() + ":3: TOML syntax error: ", 0), 0u) << message;
}

TEST_F(ConfigTest, MissingFileAndMissingBase) {
  EXPECT_EQ(message_of([&] { Config::load(dir / "nope.toml"); }),
            (dir / "nope.toml").string() + ": cannot read config file (no such file)");
  auto child = write("child.toml", "\nextends = \"base.toml\"\n");
  EXPECT_EQ(message_of([&] { Config::load(child); }),
            child.string() + ":2: extends names " + (dir / "base.toml").string() + ", which does not exist");
}

TEST_F(ConfigTest, APathTheSystemRefusesIsAnErrorNamingTheKeyAndThePath) {
  // A file name longer than the system's limit (255 bytes): std::filesystem throws its own
  // exception for it, which once escaped Config::load (found by fuzz_config).
  const std::string name = std::string(300, 'x') + ".toml";
  auto child = write("child.toml", "\nextends = \"" + name + "\"\n");
  EXPECT_EQ(message_of([&] { Config::load(child); }),
            child.string() + ":2: extends: " + (dir / name).string() + ": cannot look at this path (File name too long)");
  EXPECT_EQ(message_of([&] { Config::load(dir / name); }),
            "config file: " + (dir / name).string() + ": cannot look at this path (File name too long)");
  // A file used as a folder is just not there.
  auto as_folder = write("as_folder.toml", "extends = \"child.toml/base.toml\"\n");
  EXPECT_EQ(message_of([&] { Config::load(as_folder); }),
            as_folder.string() + ":1: extends names " + (dir / "child.toml/base.toml").string() +
                ", which does not exist");
}

TEST_F(ConfigTest, ExtendsCycleIsAnError) {
  write("a.toml", "extends = \"b.toml\"\n");
  write("b.toml", "extends = \"a.toml\"\n");
  std::string message = message_of([&] { Config::load(dir / "a.toml"); });
  EXPECT_NE(message.find(": extends cycle: "), std::string::npos) << message;
}

TEST_F(ConfigTest, ExtendsMustBeAString) {
  auto path = write("a.toml", "extends = 3\n");
  EXPECT_EQ(message_of([&] { Config::load(path); }),
            path.string() + ":1: extends must be a string naming a config file (was integer 3)");
}

TEST_F(ConfigTest, DatesAreRejectedWithTheKey) {
  auto path = write("a.toml", "[experiment]\nwhen = 2024-01-01\n");
  EXPECT_EQ(message_of([&] { Config::load(path); }),
            path.string() + ":2: experiment.when: dates and times are not supported; write a string");
}

TEST_F(ConfigTest, PathsAreRelativeToTheFileThatWroteThem) {
  fs::create_directories(dir / "sub");
  write("base.toml", "[data]\nroot = \"photos\"\n");
  auto child = write("sub/child.toml", "extends = \"../base.toml\"\n");
  Config config = Config::load(child);
  EXPECT_EQ(fs::path(config.table("data").get_path("root", "")).lexically_normal(), (dir / "photos").lexically_normal());
}

TEST_F(ConfigTest, SubtablesKeepFileOrderAndInlineTablesAreTables) {
  auto path = write("tune.toml",
                    "[tune.space.zeta]\ntype = \"int\"\n[tune.space.alpha]\ntype = \"bool\"\n"
                    "[data]\nsplit = { train = 0.8, val = 0.1, test = 0.1 }\n");
  Config config = Config::load(path);
  EXPECT_EQ(config.subtables("tune.space"), (std::vector<std::string>{"zeta", "alpha"}));
  EXPECT_DOUBLE_EQ(config.table("data.split").get_float("train", 0), 0.8);
  EXPECT_TRUE(config.contains("tune.space.alpha"));
  EXPECT_FALSE(config.contains("tune.space.beta"));
}

TEST_F(ConfigTest, ResolvedTomlRunsAsIs) {
  write("base.toml", "[train]\nepochs = 10\nlr_list = [0.001, 0.01]\n[[augment]]\nplugin = \"flip\"\n");
  auto child = write("child.toml", "extends = \"base.toml\"\n[train]\nepochs = 4\nname = \"a \\\"quoted\\\" name\"\n");
  Config original = Config::load(child);
  auto resolved = write("resolved.toml", original.resolved_toml());
  Config again = Config::load(resolved);
  auto& train = again.table("train");
  EXPECT_EQ(train.get_int("epochs", 0), 4);
  EXPECT_EQ(train.get_string("name", ""), "a \"quoted\" name");
  EXPECT_EQ(train.get_float_list("lr_list", {}), (std::vector<double>{0.001, 0.01}));
  ASSERT_EQ(again.array("augment").size(), 1u);
  EXPECT_EQ(again.array("augment")[0].get_string("plugin", ""), "flip");
}

TEST_F(ConfigTest, ResolvedTomlWritesEachFloatAsTypedAndReadsItBackExactly) {
  auto path = write("floats.toml",
                    "[data.split]\ntrain = 0.7\nval = 0.15\ntest = 0.15\n[model]\ndropout = 0.3\nscale = 2.0\n"
                    "[optimizer]\nlr = 1e-5\nbetas = [0.9, 0.999]\n\"odd key\" = 0.1\n"
                    "[[augment]]\nplugin = \"color\"\nhue = 0.02\n[[augment]]\nplugin = \"flip\"\n");
  Config original = Config::load(path);
  const std::string text = original.resolved_toml();
  // Each float as it was typed, not as 17 digits (0.14999999999999999).
  for (const char* line : {"val = 0.15\n", "train = 0.7\n", "dropout = 0.3\n", "scale = 2.0\n", "lr = 1e-05\n",
                           "betas = [0.9, 0.999]\n", "'odd key' = 0.1\n", "hue = 0.02\n"})
    EXPECT_NE(text.find(line), std::string::npos) << line << " is not in:\n" << text;
  EXPECT_EQ(text.find("999999"), std::string::npos) << text;
  EXPECT_EQ(text.find("000001"), std::string::npos) << text;
  // The same doubles, bit for bit, and the tables in their places.
  Config again = Config::load(write("again.toml", text));
  EXPECT_EQ(again.table("data.split").get_float("val", 0), 0.15);
  EXPECT_EQ(again.table("optimizer").get_float("lr", 0), 1e-5);
  EXPECT_EQ(again.table("optimizer").get_float("odd key", 0), 0.1);
  EXPECT_EQ(again.table("optimizer").get_float_list("betas", {}), (std::vector<double>{0.9, 0.999}));
  ASSERT_EQ(again.array("augment").size(), 2u);
  EXPECT_EQ(again.array("augment")[0].get_float("hue", 0), 0.02);
  EXPECT_EQ(again.array("augment")[1].get_string("plugin", ""), "flip");
}

TEST_F(ConfigTest, ArrayElementsAreLabelledByPosition) {
  auto path = write("a.toml", "[[augment]]\nplugin = \"flip\"\n[[augment]]\nplugin = \"color\"\nbrightnes = 0.1\n");
  Config config = Config::load(path);
  for (auto& element : config.array("augment")) {
    element.get_string("plugin", "");
    element.get_float("brightness", 0);
  }
  ASSERT_EQ(config.problems().size(), 1u);
  EXPECT_EQ(config.problems()[0],
            path.string() + ":5: [[augment]] #2 unknown key \"brightnes\"; did you mean \"brightness\"?");
}

TEST_F(ConfigTest, ResolvedTomlWithAbsolutePathsMeansTheSameFromAnyFolder) {
  // A base config in another folder names its data relative to itself; saved elsewhere
  // (a run folder), the text must still name that folder.
  fs::create_directories(dir / "shared");
  fs::create_directories(dir / "exp");
  write("shared/base.toml", "[data]\nroot = \"../photos\"\nname = \"not a path\"\n");
  auto child = write("exp/child.toml", "extends = \"../shared/base.toml\"\n[plugins]\npaths = [\"p1\", \"/abs\"]\n");
  Config config = Config::load(child);
  config.table("data").get_path("root", "");
  config.table("data").get_string("name", "");
  config.table("plugins").get_value("paths");
  config.table("plugins").describe("paths", "path or list of paths", "[]");
  Config saved = Config::parse(config.resolved_toml(Config::Paths::absolute), (dir / "elsewhere" / "x.toml").string());
  EXPECT_EQ(saved.table("data").get_string("root", ""), (dir / "photos").string());
  EXPECT_EQ(saved.table("data").get_string("name", ""), "not a path");
  EXPECT_EQ(saved.table("plugins").get_string_list("paths", {}),
            (std::vector<std::string>{(dir / "exp" / "p1").string(), "/abs"}));
  Config as_written = Config::parse(config.resolved_toml(), "x.toml");
  EXPECT_EQ(as_written.table("data").get_string("root", ""), "../photos");
}

TEST_F(ConfigTest, ABareFileNameAndTheCommandLineResolveAgainstTheWorkingDirectory) {
  // `cd exp && bachlab run child.toml data.cache_dir=cache`: neither origin has a folder
  // part (the file is "child.toml", the override's origin "command line"); both mean the
  // working directory, as get_path() reads them, instead of failing to absolutize "".
  fs::create_directories(dir / "exp");
  write("exp/child.toml", "[data]\nroot = \"photos\"\n");
  const fs::path before = fs::current_path();
  fs::current_path(dir / "exp");
  Config config = Config::load("child.toml", {"data.cache_dir=cache"});
  config.table("data").get_path("root", "");
  config.table("data").get_path("cache_dir", "");
  const std::string resolved = config.resolved_toml(Config::Paths::absolute);
  fs::current_path(before);
  Config saved = Config::parse(resolved, (dir / "elsewhere" / "x.toml").string());
  EXPECT_EQ(saved.table("data").get_string("root", ""), (dir / "exp" / "photos").string());
  EXPECT_EQ(saved.table("data").get_string("cache_dir", ""), (dir / "exp" / "cache").string());
}

TEST_F(ConfigTest, OnlyRegularFilesOfAConfigsSizeAreRead) {
  fs::create_directories(dir / "folder");
  auto child = write("child.toml", "extends = \"folder\"\n");
  EXPECT_EQ(message_of([&] { Config::load(child); }),
            (dir / "folder").string() + ": cannot read config file (it is a folder); name a .toml file");
  auto zero = write("zero.toml", "extends = \"/dev/zero\"\n");
  EXPECT_EQ(message_of([&] { Config::load(zero); }),
            "/dev/zero: cannot read config file (it is not a regular file but a device, pipe or socket); name a "
            ".toml file");
  auto big = write("big.toml", "# " + std::string(2 << 20, 'x') + "\n");
  EXPECT_EQ(message_of([&] { Config::load(big); }),
            big.string() + ": cannot read config file (it is 2097155 bytes; a config is at most 1048576 bytes); name "
                           "a .toml file");
}

// Command-line overrides (`bachlab run cfg.toml train.epochs=5`) are typed as TOML reads
// them, win over the files, and are validated and reported like file keys.
TEST_F(ConfigTest, OverridesAreTypedAndWinOverTheFiles) {
  auto path = write("a.toml", "[train]\nepochs = 10\n[model]\nplugin = \"model4a\"\n");
  Config config = Config::load(path, {"train.epochs=5", "optimizer.lr=3e-4", "model.plugin=model4b",
                                      "model.filters=[16, 32]", "train.restore_best=false", "data.root=photos"});
  EXPECT_EQ(config.table("train").get_int("epochs", 0), 5);
  EXPECT_DOUBLE_EQ(config.table("optimizer").get_float("lr", 0), 3e-4);
  EXPECT_EQ(config.table("model").get_string("plugin", ""), "model4b");
  EXPECT_EQ(config.table("model").get_int_list("filters", {}), (std::vector<int64_t>{16, 32}));
  EXPECT_FALSE(config.table("train").get_bool("restore_best", true));
  // Typed in a shell: relative to the working directory, not to the config file.
  EXPECT_EQ(config.table("data").get_path("root", ""), "photos");
  EXPECT_TRUE(config.problems().empty());
  // The saved config records the final values.
  Config again = Config::parse(config.resolved_toml(), "saved.toml");
  EXPECT_EQ(again.table("train").get_int("epochs", 0), 5);
  EXPECT_EQ(again.table("model").get_string("plugin", ""), "model4b");
}

TEST_F(ConfigTest, OverrideMistakesAreReportedAsFromTheCommandLine) {
  auto path = write("a.toml", "[train]\nepochs = 10\n");
  Config config = Config::load(path, {"train.epochs=abc", "train.batch_size=0", "train.epohcs=3", "trian.seed=1"});
  config.table("train").get_int("epochs", 20, {1, 100000});
  config.table("train").get_int("batch_size", 32, {1, 4096});
  EXPECT_EQ(config.problems(),
            (std::vector<std::string>{
                "command line: unknown table [trian]; did you mean [train]?",
                "command line: [train] epochs must be an integer (was string \"abc\")",
                "command line: [train] batch_size must be in 1..4096 (was 0)",
                "command line: [train] unknown key \"epohcs\"; did you mean \"epochs\"?"}));
}

TEST_F(ConfigTest, OverridesThatCannotBeAppliedSayWhy) {
  auto path = write("a.toml", "[train]\nepochs = 10\n[[augment]]\nplugin = \"flip\"\n");
  EXPECT_EQ(message_of([&] { Config::load(path, {"epochs"}); }),
            "command line: \"epochs\" is not an override; write KEY=VALUE with the key as a dotted path, e.g. "
            "train.epochs=5, ~KEY to remove a key or table, or +KEY={...} to append a table to an array of tables");
  EXPECT_EQ(message_of([&] { Config::load(path, {"train.epochs.max=3"}); }),
            "command line: train.epochs.max=3: train.epochs is a value, not a table");
  EXPECT_EQ(message_of([&] { Config::load(path, {"augment.p=0.5"}); }),
            "command line: augment.p=0.5: [[augment]] is an array of 1 table (indices 0-0); name one by its 0-based "
            "index, e.g. augment.0.p");
  EXPECT_EQ(message_of([&] { Config::load(path, {"train=3"}); }),
            "command line: train=3: train is a table; set one of its keys, e.g. train.KEY=VALUE");
  EXPECT_TRUE(Config::is_override("optimizer.lr=3e-4"));
  EXPECT_FALSE(Config::is_override("configs/a=b.toml"));
  EXPECT_FALSE(Config::is_override("configs/model4a.toml"));
}

// [[augment]] from the command line: an element by its 0-based index (augment.0.p=0.3),
// a table appended with Hydra's + (+augment={...}), one removed (~augment.1), in the order
// given; the saved config holds the result and the values say they came from the command line.
TEST_F(ConfigTest, ArraysOfTablesAreSetAppendedToAndShortenedByIndex) {
  write("base.toml", "[[augment]]\nplugin = \"flip\"\np = 0.5\n[[augment]]\nplugin = \"color\"\n");
  auto path = write("child.toml", "extends = \"base.toml\"\n[train]\nepochs = 3\n");
  Config config = Config::load(path, {"augment.0.p=0.3", "+augment={plugin = \"rotate90\", p = 0.25}", "~augment.1",
                                      "augment.1.seed=7"});
  auto& augment = config.array("augment");
  ASSERT_EQ(augment.size(), 2u);
  EXPECT_EQ(augment[0].get_string("plugin", ""), "flip");
  EXPECT_DOUBLE_EQ(augment[0].get_float("p", 0), 0.3);
  EXPECT_EQ(augment[1].get_string("plugin", ""), "rotate90");
  EXPECT_DOUBLE_EQ(augment[1].get_float("p", 0), 0.25);
  EXPECT_EQ(augment[1].get_int("seed", 0), 7);
  EXPECT_EQ(augment[0].origin("p").file, "command line");
  EXPECT_EQ(augment[0].origin("plugin").file, (dir / "base.toml").string());
  EXPECT_EQ(augment[1].origin("plugin").file, "command line");
  // The saved config reads back the same.
  Config again = Config::parse(config.resolved_toml(), "saved.toml");
  ASSERT_EQ(again.array("augment").size(), 2u);
  EXPECT_EQ(again.array("augment")[1].get_string("plugin", ""), "rotate90");
  // settings() names the elements as the overrides do.
  std::vector<std::string> keys;
  for (const auto& setting : config.settings()) keys.push_back(setting.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"train.epochs", "augment.0.p", "augment.0.plugin", "augment.1.p",
                                            "augment.1.plugin", "augment.1.seed"}));

  // Appending to a config without [[augment]] makes the array; removing the last element removes it.
  Config plain = Config::load(path, {"~augment", "+augment={plugin = \"flip\"}"});
  ASSERT_EQ(plain.array("augment").size(), 1u);
  Config none = Config::load(path, {"~augment.1", "~augment.0"});
  EXPECT_FALSE(none.contains("augment"));
  EXPECT_EQ(none.resolved_toml().find("augment"), std::string::npos) << none.resolved_toml();

  EXPECT_EQ(message_of([&] { Config::load(path, {"augment.2.p=0.1"}); }),
            "command line: augment.2.p=0.1: [[augment]] has 2 tables (indices 0-1), so there is no table 2; append "
            "one with +augment={plugin = \"...\"}");
  EXPECT_EQ(message_of([&] { Config::load(path, {"~augment.5"}); }),
            "command line: ~augment.5: [[augment]] has 2 tables (indices 0-1), so there is no table 5; append one "
            "with +augment={plugin = \"...\"}");
  EXPECT_EQ(message_of([&] { Config::load(path, {"augment.0=3"}); }),
            "command line: augment.0=3: augment.0 is a table; set one of its keys, e.g. augment.0.KEY=VALUE");
  EXPECT_EQ(message_of([&] { Config::load(path, {"augment=3"}); }),
            "command line: augment=3: augment is an array of tables; set one of its keys, e.g. augment.0.KEY=VALUE");
  EXPECT_EQ(message_of([&] { Config::load(path, {"+augment=flip"}); }),
            "command line: +augment=flip: +KEY appends a table to the array of tables KEY, so the value must be an "
            "inline table, e.g. '+augment={plugin = \"flip\"}' (quoted for the shell)");
  EXPECT_EQ(message_of([&] { Config::load(path, {"+train={epochs = 2}"}); }),
            "command line: +train={epochs = 2}: train is a table, not an array of tables, so no table can be "
            "appended to it");
  EXPECT_TRUE(Config::is_override("+augment={plugin = \"flip\"}"));
  EXPECT_TRUE(Config::is_override("augment.0.p=0.3"));
  EXPECT_FALSE(Config::is_override("+=3"));
}

// ~KEY (Hydra's deletion) removes a key, a table or an array of tables, also one set in a
// file the config extends: what makes `data.split.folds=5` possible on a config whose base
// sets train/val/test fractions.
TEST_F(ConfigTest, TildeRemovesAKeyATableOrAnArrayOfTablesFromAnyFileOfTheChain) {
  write("base.toml", "[data.split]\ntrain = 0.5\nval = 0.25\ntest = 0.25\n[[augment]]\nplugin = \"flip\"\n");
  auto path = write("child.toml", "extends = \"base.toml\"\n[train]\nepochs = 3\n[model]\nplugin = \"x\"\n");
  Config config = Config::load(path, {"~data.split.train", "~augment", "~model", "data.split.folds=5"});
  const std::string toml = config.resolved_toml();
  EXPECT_EQ(toml.find("train = 0.5"), std::string::npos) << toml;
  EXPECT_NE(toml.find("val = 0.25"), std::string::npos) << toml;
  EXPECT_NE(toml.find("folds = 5"), std::string::npos) << toml;
  EXPECT_FALSE(config.contains("augment"));
  EXPECT_FALSE(config.contains("model"));
  EXPECT_EQ(message_of([&] { Config::load(path, {"~data.split.seed"}); }),
            "command line: ~data.split.seed: the config has no key or table data.split.seed to remove");
  EXPECT_TRUE(Config::is_override("~data.split.train"));
  EXPECT_FALSE(Config::is_override("~"));
  EXPECT_FALSE(Config::is_override("~/photos"));
}

// Found with the config fuzz target (tests/fuzz): an override that was not UTF-8 (a Latin-1
// file name, say) was saved in the run's config.toml as other characters ("\u00E9" for the
// byte 0xE9), so eval and --resume would have read another path. Now it is refused.
TEST_F(ConfigTest, AnOverrideThatIsNotUtf8IsRefusedBecauseTheSavedRunWouldNameSomethingElse) {
  auto path = write("a.toml", "[data]\nroot = \"photos\"\n");
  EXPECT_EQ(message_of([&] { Config::load(path, {"data.root=/data/caf\xE9"}); }),
            "command line: data.root=...: the value is not UTF-8 text (byte 0xe9 at position 10 of the value); a "
            "config holds UTF-8 text only, so write the value in UTF-8 (a file name in another encoding: rename "
            "the file, or put it in a folder with a UTF-8 name)");
  // Overlong forms, surrogates and cut-off sequences are not UTF-8 either.
  for (const char* bad : {"x=\xC0\xAF", "x=\xED\xA0\x80", "x=\xE2\x82", "x=\xF4\x90\x80\x80", "x=\"\xFF\""})
    EXPECT_NE(message_of([&] { Config::load(path, {std::string("experiment.") + bad}); }), "(no error)") << bad;
  // UTF-8 (two-, three- and four-byte characters) is kept byte for byte through the saved config.
  const std::string name = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x94\xAC";
  Config config = Config::load(path, {"data.root=/data/" + name, "experiment.name=\"" + name + "\""});
  Config again = Config::parse(config.resolved_toml(), "saved.toml");
  EXPECT_EQ(again.table("data").get_path("root", ""), "/data/" + name);
  EXPECT_EQ(again.table("experiment").get_string("name", ""), name);
}

// problems() sorts by the "file:line:" each problem starts with; a folder whose name looks
// like ":<digits>:" with more digits than an int holds made that an std::out_of_range (an
// "internal error" instead of the list of problems).
TEST_F(ConfigTest, AFolderNamedWithColonsAndManyDigitsKeepsTheProblemList) {
  fs::create_directories(dir / "a:99999999999:b");
  auto path = write("a:99999999999:b/c.toml", "[train]\nepohcs = 3\nbach_size = 2\n");
  Config config = Config::load(path);
  config.table("train").get_int("epochs", 1);
  config.table("train").get_int("batch_size", 1);
  std::vector<std::string> problems;
  ASSERT_NO_THROW(problems = config.problems());  // two problems, so they are sorted
  std::sort(problems.begin(), problems.end());
  EXPECT_EQ(problems, (std::vector<std::string>{
                          path.string() + ":2: [train] unknown key \"epohcs\"; did you mean \"epochs\"?",
                          path.string() + ":3: [train] unknown key \"bach_size\"; did you mean \"batch_size\"?"}));
}

}  // namespace
}  // namespace bachlab::host
