// `bachlab config CONFIG [KEY=VALUE | +KEY={...} | ~KEY ...] [--origin]`: the config a run
// would save, printed before anything runs (Hydra's --cfg job). The text is made by the very
// steps `run` takes before it saves config.toml (host::new_run_config), so the two cannot
// differ; a study config ([tune]) prints what its study records.
#include "host/cli/commands.h"
#include "host/config/config.h"
#include "host/plugins/registry.h"
#include "host/train/runner.h"

#include <fmt/format.h>

#include <algorithm>
#include <iostream>

namespace bachlab::cli {

namespace {

// One `key = value  # where it was set` line per value, the comments aligned (a long
// value, such as a description, pushes only its own comment).
std::string format_origins(const std::vector<host::Config::Setting>& settings) {
  constexpr size_t kMostAligned = 40;
  size_t width = 0;
  std::vector<std::string> assignments;
  for (const auto& s : settings) {
    assignments.push_back(s.key + " = " + sdk::to_string(s.value));
    if (assignments.back().size() <= kMostAligned) width = std::max(width, assignments.back().size());
  }
  std::string out;
  for (size_t i = 0; i < settings.size(); ++i) {
    const sdk::Origin& origin = settings[i].origin;
    out += fmt::format("{:<{}}  # {}{}\n", assignments[i], width, origin.file,
                       origin.line > 0 ? ":" + std::to_string(origin.line) : std::string());
  }
  return out;
}

}  // namespace

void add_config_commands(CLI::App& app) {
  auto* command = app.add_subcommand(
      "config", "Print the fully resolved config a run would save (extends merged, overrides applied), as TOML");
  static std::vector<std::string> arguments;
  static bool origin = false;
  static std::vector<std::string> plugin_paths;
  command->add_option("CONFIG", arguments,
                      "A config file, then overrides: KEY=VALUE, +KEY={...} (append a table) or ~KEY (remove)")
      ->required();
  command->add_flag("--origin", origin, "Print one `key = value  # file:line` line per value instead: where it was set");
  command->add_option("--plugin-path", plugin_paths, "Also search this folder for plugins (repeatable)")
      ->allow_extra_args(false);
  on_run(command, [] {
    const ConfigArguments given = split_config_arguments(arguments);
    if (given.files.size() != 1)
      throw UsageError(fmt::format("bachlab config takes one config file (got {})", given.files.size()));
    host::RunOptions options;
    options.config_overrides = given.overrides;
    for (const auto& p : plugin_paths) options.plugin_paths.emplace_back(p);
    host::Config config = host::Config::load(given.files.front(), given.overrides);
    host::Config::Paths paths = host::Config::Paths::absolute;
    if (config.contains("tune")) {
      // What `bachlab tune` records in its study: the config as written, checked by the study's readers.
      host::PluginRegistry registry;
      check_config(config, registry, options.plugin_paths);
      paths = host::Config::Paths::as_written;
    } else {
      config = host::new_run_config(given.files.front(), options);
    }
    std::cout << (origin ? format_origins(config.settings(paths)) : config.resolved_toml(paths));
    return 0;
  });
}

}  // namespace bachlab::cli
