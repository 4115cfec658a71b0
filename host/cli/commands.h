#pragma once
// Each area of the host adds its subcommands to the one CLI11 app here; main() only
// wires them up, so a new command never needs an edit outside its own area.

#include <CLI/CLI.hpp>

#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace bachlab::host {
class Config;
class PluginRegistry;
}  // namespace bachlab::host

namespace bachlab::cli {

/// A subcommand's work: runs after parsing, returns the process exit code.
using Action = std::function<int()>;

/// Sets the action run when `command` is chosen on the command line.
void on_run(CLI::App* command, Action action);

/// The subcommands, one function per area (each defined in that area's folder).
void add_plugins_commands(CLI::App& app);  // plugins, check      (host/cli)
void add_config_keys_commands(CLI::App& app);  // config-keys     (host/cli/config_keys_command.cpp)
void add_bench_commands(CLI::App& app);    // bench, bench compare (host/cli)
void add_new_plugin_commands(CLI::App& app);  // new-plugin          (host/cli)
void add_synth_commands(CLI::App& app);    // synth               (host/data/synth_command.cpp)
void add_data_commands(CLI::App& app);     // explore             (host/data)
void add_run_commands(CLI::App& app);      // run, eval, predict  (host/train)
void add_tune_commands(CLI::App& app);     // tune                (host/tune)
/// What `bachlab check` found in one config: its OK line and the plugins it built.
struct CheckedConfig {
  std::string summary;
  /// (kind, name) of every plugin object the config built, tuner included.
  std::vector<std::pair<std::string, std::string>> plugins;
};

/// Runs every reader of `config` as `bachlab check` does: for a study config ([tune]) the
/// tune tables, the tuner and the experiment, else the experiment's tables and plugins.
/// Scans the plugin folders into `registry` first. Throws Error listing every problem.
CheckedConfig check_config(host::Config& config, host::PluginRegistry& registry);

/// The text of `bachlab bench compare`: one row per benchmark of either file.
std::string compare_bench_results(const std::filesystem::path& before, const std::filesystem::path& after);
}  // namespace bachlab::cli
