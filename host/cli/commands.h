#pragma once
// The commands: cli/ is the one area that knows them (CLI11). Each add_*_commands function
// (one file per area it wires, all in host/cli/) adds its subcommands to the app and calls
// the functions that area's library exposes; main() only calls them.

#include "host/config/config.h"
#include "host/data/data_config.h"
#include "host/data/option_error.h"
#include "host/train/memory_estimate.h"

#include <bachlab/sdk/error.h>

#include <CLI/CLI.hpp>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace bachlab::host {
class PluginRegistry;
}  // namespace bachlab::host

namespace bachlab::cli {

/// A subcommand's work: runs after parsing, returns the process exit code.
using Action = std::function<int()>;

/// Sets the action run when `command` is chosen on the command line.
void on_run(CLI::App* command, Action action);
/// The action on_run() set for `command`; null if none.
const Action* action_of(CLI::App* command);

/// Runs `work`; an OptionError from the area it calls is thrown again as an Error that
/// says the same with the command's flag in place of the area's name for the option
/// (`flags` maps an option, e.g. "per_class", to its flag, "--per-class"). Wrap only the
/// calls whose options are the command's own flags: an option of something the call
/// reaches from a config (a synthetic set in the cache) has no flag.
template <typename Work>
auto naming_flags(const std::map<std::string, std::string>& flags, Work&& work) -> decltype(work()) {
  try {
    return work();
  } catch (const host::OptionError& e) {
    const auto flag = flags.find(e.option());
    if (flag == flags.end()) throw;
    throw Error(e.naming(flag->second));
  }
}

/// The program's command-line arguments after its name, as main() received them (`run
/// --nproc` starts its ranks with the same ones).
void remember_arguments(int argc, char** argv);
const std::vector<std::string>& program_arguments();

/// A mistake in how the program was called (a missing argument, arguments that clash),
/// as opposed to a mistake in a config or the data: main() exits with 2 for it, as for
/// the usage errors CLI11 finds itself.
class UsageError : public Error {
 public:
  using Error::Error;
};

/// The positional arguments of a command that takes configs, split into the config files
/// and the KEY=VALUE overrides (host::Config::apply_overrides) that follow them. An argument
/// naming an existing file is a file even if it holds a "=".
struct ConfigArguments {
  std::vector<std::string> files;
  std::vector<std::string> overrides;
};
inline ConfigArguments split_config_arguments(const std::vector<std::string>& arguments) {
  ConfigArguments out;
  for (const auto& argument : arguments) {
    std::error_code ec;
    // KEY=VALUE or ~KEY that names no file or folder is an override, even with a malformed key (a
    // typo, bytes that are not UTF-8): apply_overrides then says what is wrong with it,
    // rather than "cannot open" a config file of that name.
    const bool override_like = (argument.find('=') != std::string::npos && argument.front() != '=') ||
                               (!argument.empty() && argument.front() == '~');
    if (override_like && !std::filesystem::exists(argument, ec)) {
      out.overrides.push_back(argument);
    } else {
      out.files.push_back(argument);
    }
  }
  return out;
}

/// The subcommands, one function per area (each defined in host/cli/).
void add_plugins_commands(CLI::App& app);  // plugins, check      (plugins_command.cpp)
void add_config_keys_commands(CLI::App& app);  // config-keys     (config_keys_command.cpp)
void add_config_commands(CLI::App& app);   // config              (config_command.cpp)
void add_bench_commands(CLI::App& app);    // bench, bench compare (bench_command.cpp)
void add_new_plugin_commands(CLI::App& app);  // new-plugin          (new_plugin_command.cpp)
void add_synth_commands(CLI::App& app);    // synth               (synth_command.cpp)
void add_data_commands(CLI::App& app);     // explore             (explore_command.cpp)
void add_run_commands(CLI::App& app);      // run, eval, predict  (run_commands.cpp)
void add_tune_commands(CLI::App& app);     // tune                (tune_command.cpp)
void add_compare_commands(CLI::App& app);  // compare             (compare_command.cpp)
/// What `bachlab check` found in one config: its OK line and the plugins it built.
struct CheckedConfig {
  std::string summary;
  /// (kind, name) of every plugin object the config built, tuner included.
  std::vector<std::pair<std::string, std::string>> plugins;
  /// The experiment's [data], for checking the photos (host::check_dataset).
  host::DataConfig data;
  /// The experiment's plan, for what a run checks before it starts (host::check_run_can_start:
  /// memory, patch size, stain reference); null for a study config, whose trials differ.
  std::shared_ptr<const host::ExperimentPlan> plan;
};

/// Runs every reader of `config` as `bachlab check` does: for a study config ([tune]) the
/// tune tables, the tuner and the experiment, else the experiment's tables and plugins.
/// Scans the plugin folders into `registry` first. Throws Error listing every problem.
CheckedConfig check_config(host::Config& config, host::PluginRegistry& registry,
                           const std::vector<std::filesystem::path>& extra_plugin_paths = {});

/// The text of `bachlab bench compare`: one row per benchmark of either file.
std::string compare_bench_results(const std::filesystem::path& before, const std::filesystem::path& after);
}  // namespace bachlab::cli
