// The config reference: keys gathered from readers that ran, the doc's generated tables
// rewritten with their meanings kept, and every kind of drift between doc and code found.
#include "host/config/config_schema.h"

#include <bachlab/sdk/param_table.h>
#include <bachlab/sdk/error.h>

#include <gtest/gtest.h>

namespace bachlab::host {
namespace {

std::string same(const std::string& table) { return table; }

// A config whose [train] reader and a model plugin's reader have run.
Config read_config(const std::string& name, int64_t epochs_default) {
  Config config = Config::parse("[train]\nepochs = 3\n[model]\nplugin = \"m1\"\nfilters = 8\n", name);
  config.table("train").get_int("epochs", epochs_default, {1, 100});
  sdk::ParamTable& model = config.table("model");
  model.get_string("plugin", "");
  model.set_reader("model m1");
  model.get_int("filters", 32, {1, 4096});
  model.set_reader("");
  return config;
}

const std::string kIntro = "# Config reference\n\nHand-written text.\n\n";

TEST(ConfigSchema, ListsHostTablesThenPluginsWithTheirSpecs) {
  ConfigSchema schema;
  schema.add(read_config("a.toml", 20), same);
  schema.add_plugin("tuner", "random", "[tune.options]");
  auto sections = schema.sections();
  ASSERT_EQ(sections.size(), 4u);
  EXPECT_EQ(sections[0].title, "`[model]`");
  EXPECT_EQ(sections[0].keys.at("plugin").fallback, "\"\"");
  EXPECT_EQ(sections[1].title, "`[train]`");
  EXPECT_EQ(sections[1].keys.at("epochs"), (sdk::KeySpec{"integer", "20", "1..100", ""}));
  EXPECT_EQ(sections[2].title, "m1");
  EXPECT_EQ(sections[2].table, "[model]");
  EXPECT_EQ(sections[2].keys.at("filters").rule, "1..4096");
  EXPECT_EQ(sections[3].title, "random");
  EXPECT_TRUE(sections[3].keys.empty());
  EXPECT_TRUE(schema.has_plugin("model", "m1"));
  EXPECT_FALSE(schema.has_plugin("model", "m2"));
}

TEST(ConfigSchema, AKeyReadWithAnotherDefaultByAnotherConfigIsAnError) {
  ConfigSchema schema;
  schema.add(read_config("a.toml", 20), same);
  schema.add(read_config("b.toml", 20), same);  // the same specs: fine
  try {
    schema.add(read_config("c.toml", 30), same);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "`[train]` epochs: c.toml reads it as integer, default 30, range 1..100, but a.toml read it as "
              "integer, default 20, range 1..100; the reference has one row per key, so a default or range that "
              "depends on other settings must be stated in words with Params::describe");
  }
}

TEST(ConfigSchema, UpdateKeepsTheMeaningsAndTheTextAroundTheTables) {
  ConfigSchema schema;
  schema.add(read_config("a.toml", 20), same);
  const std::string empty = kIntro + schema.markdown() + "\n\nMore hand-written text.\n";
  const std::string generated = schema.update(empty, "configs.md");
  EXPECT_EQ(generated, empty);
  // A reader writes a meaning; the next update keeps it.
  std::string written = generated;
  const std::string row = "| `epochs` | integer | 20 | 1..100 |  |";
  ASSERT_NE(written.find(row), std::string::npos) << written;
  written.replace(written.find(row), row.size(), "| `epochs` | integer | 20 | 1..100 | Passes over the data. |");
  EXPECT_EQ(schema.update(written, "configs.md"), written);
  EXPECT_EQ(written.rfind(kIntro, 0), 0u);
  EXPECT_NE(written.find("\n\nMore hand-written text.\n"), std::string::npos);
  EXPECT_NE(written.find("### m1\n\nWritten in `[model]` with `plugin = \"m1\"`."), std::string::npos) << written;
}

TEST(ConfigSchema, DriftNamesEveryDifferenceWithItsLine) {
  ConfigSchema schema;
  schema.add(read_config("a.toml", 20), same);
  std::string doc = schema.update(kIntro + schema.markdown(), "configs.md");
  auto fill = [&](const std::string& key, const std::string& meaning) {
    const std::string marker = "| `" + key + "` |";
    const auto at = doc.find(marker);
    const auto end = doc.find('\n', at);
    doc.replace(end - 3, 3, " " + meaning + " |");  // the row ends "|  |" while its meaning is empty
  };
  fill("plugin", "The model plugin.");
  fill("epochs", "Passes over the data.");
  fill("filters", "Filters per convolution.");
  EXPECT_TRUE(schema.drift(doc, "configs.md").empty()) << doc;

  // The code changed a default, and the doc documents a key nobody reads.
  std::string drifted = doc;
  drifted.replace(drifted.find("| integer | 20 |"), 16, "| integer | 25 |");
  drifted.replace(drifted.find("| `filters` |"), 0, "| `filter` | integer | 32 |  | Typo. |\n");
  // A new key the doc does not have yet.
  Config config = read_config("a.toml", 20);
  config.table("train").get_bool("restore_best", true);
  ConfigSchema newer;
  newer.add(config, same);
  EXPECT_EQ(newer.drift(drifted, "configs.md"),
            (std::vector<std::string>{
                "configs.md:19: `[train]` epochs: documented as integer, default 25, range 1..100, but the code reads "
                "integer, default 20, range 1..100; run scripts/update_config_docs.sh",
                "configs.md:15: `[train]` restore_best: read by the code (a.toml: bool, default true, range any) but "
                "not documented; run scripts/update_config_docs.sh and write its meaning",
                "configs.md:29: m1 filter: documented, but no reader asks for it; remove the row or run "
                "scripts/update_config_docs.sh"}))
      << drifted;

  // An update fixes the columns and leaves the new row's meaning to write.
  const std::string updated = newer.update(drifted, "configs.md");
  EXPECT_EQ(newer.drift(updated, "configs.md"),
            (std::vector<std::string>{"configs.md:20: `[train]` restore_best: the meaning column is empty; say what "
                                      "the key does"}));
}

TEST(ConfigSchema, ADocWithoutTheMarkersIsRefused) {
  ConfigSchema schema;
  EXPECT_EQ(schema.drift("# nothing", "configs.md").size(), 1u);
  EXPECT_THROW(schema.update("# nothing", "configs.md"), Error);
}

}  // namespace
}  // namespace bachlab::host
