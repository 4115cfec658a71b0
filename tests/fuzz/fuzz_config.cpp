// libFuzzer target: the config reader. One input is up to three parts separated by lines
// holding only "%%": the TOML of main.toml, the TOML of base.toml (which main.toml may
// name with `extends = "base.toml"`, and which may extend main.toml or itself), and
// command-line overrides, one KEY=VALUE a line. Checks that
//   * every problem is a bachlab::Error with a message (no other exception, no crash);
//   * a config that loads gives the [data] reader's values and problems without one;
//   * resolved_toml(), what a run folder saves as config.toml, loads again as the same
//     config (the same text when written once more), with paths as written or absolute.

#include "fuzz_common.h"

#include "host/config/config.h"
#include "host/data/data_config.h"

#include <string>
#include <vector>

using bachlab::host::Config;

namespace {

void round_trip(const Config& config, Config::Paths paths) {
  const std::string saved = config.resolved_toml(paths);
  Config again;
  try {
    again = Config::parse(saved, "config.toml");
  } catch (const bachlab::Error& e) {
    bachlab::fuzz::require(false, "the resolved config does not load again: " + std::string(e.what()) +
                                      "\n--- resolved text ---\n" + saved);
  }
  const std::string twice = again.resolved_toml(Config::Paths::as_written);
  bachlab::fuzz::require(twice == config.resolved_toml(Config::Paths::as_written) || paths == Config::Paths::absolute,
                         "the resolved config reads back as another config:\n--- first ---\n" + saved +
                             "\n--- read back and written again ---\n" + twice);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = bachlab::fuzz::split_parts(std::string(reinterpret_cast<const char*>(data), size), "%%");
  const auto& dir = bachlab::fuzz::scratch_dir("config");
  const auto main_file = dir / "main.toml";
  bachlab::fuzz::write_file(main_file, parts[0]);
  bachlab::fuzz::write_file(dir / "base.toml", parts.size() > 1 ? parts[1] : "");
  std::vector<std::string> overrides;
  bool extends_override = false;
  if (parts.size() > 2) {
    size_t start = 0;
    const std::string& lines = parts[2];
    while (start <= lines.size()) {
      size_t end = lines.find('\n', start);
      if (end == std::string::npos) end = lines.size();
      if (end > start) {
        overrides.push_back(lines.substr(start, end - start));
        extends_override |= overrides.back().rfind("extends=", 0) == 0;
      }
      start = end + 1;
    }
  }

  bachlab::fuzz::expect_only_bachlab_errors("Config::load", [&] {
    Config config = Config::load(main_file, overrides);
    bachlab::host::read_data_config(config, 7);
    for (const auto& problem : config.problems()) bachlab::fuzz::require(!problem.empty(), "an empty problem");
    // A top-level `extends` given on the command line is reported as an unknown key by
    // check(), so such a config is never saved; every other config must survive saving.
    if (extends_override) return;
    round_trip(config, Config::Paths::as_written);
    round_trip(config, Config::Paths::absolute);
  });
  bachlab::fuzz::expect_only_bachlab_errors("Config::parse", [&] {
    Config config = Config::parse(parts[0], "text.toml");
    bachlab::host::read_data_config(config, 7);
    (void)config.problems();
  });
  return 0;
}
