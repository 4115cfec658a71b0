// bachlab: classify breast-cancer histology photos and run, compare and tune experiments.
#include "host/cli/commands.h"
#include "host/plugins/registry.h"

#include <bachlab/sdk/error.h>
#include <bachlab/sdk/param_table.h>

#include <c10/util/Exception.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iostream>

namespace bachlab::cli {

namespace {

// The deepest command chosen so far: `bench compare` rather than `bench`.
CLI::App* chosen_command(CLI::App& app) {
  CLI::App* chosen = &app;
  while (!chosen->get_subcommands().empty()) chosen = chosen->get_subcommands().front();
  return chosen;
}

// "unknown option --epoch; did you mean --epochs?" for the first --option of argv that
// `command` does not take, when one of its options is close; "" otherwise.
std::string option_hint(CLI::App* command, int argc, char** argv) {
  std::vector<std::string> known;
  for (CLI::App* c = command; c; c = c->get_parent())
    for (const CLI::Option* option : c->get_options())
      for (const auto& name : option->get_lnames()) known.push_back("--" + name);
  for (int i = 1; i < argc; ++i) {
    std::string argument = argv[i];
    if (argument.rfind("--", 0) != 0 || argument == "--") continue;
    argument = argument.substr(0, argument.find('='));
    if (std::find(known.begin(), known.end(), argument) != known.end()) continue;
    const std::string hint = sdk::closest_match(argument, known);
    return hint.empty() ? "" : "unknown option " + argument + "; did you mean " + hint + "?";
  }
  return "";
}

// "PATH: what the system said (what was being done)" for a std::filesystem error, whose
// what() repeats the call's name and quotes in its own format.
std::string filesystem_problem(const std::filesystem::filesystem_error& e) {
  std::string text = e.path1().empty() ? std::string() : e.path1().string() + ": ";
  text += e.code().message();
  if (!e.path2().empty()) text += " (with " + e.path2().string() + ")";
  return text;
}

// A failed allocation in LibTorch (a batch, an image or a model too large for this
// machine's memory), said as the user's to fix: how much was asked for and what to lower,
// without LibTorch's source location and backtrace. Empty for any other LibTorch error.
std::string allocation_problem(const c10::Error& e) {
  const std::string text = e.what_without_backtrace();
  if (text.find("can't allocate memory") == std::string::npos && text.find("out of memory") == std::string::npos)
    return "";
  std::string asked;
  const std::string marker = "tried to allocate ";
  if (const size_t at = text.find(marker); at != std::string::npos) {
    const double bytes = std::strtod(text.c_str() + at + marker.size(), nullptr);
    if (bytes > 0) asked = fmt::format(" ({:.1f} GiB in one piece)", bytes / (1024.0 * 1024.0 * 1024.0));
  }
  return "out of memory: LibTorch could not allocate a tensor" + asked +
         "; lower [train] batch_size, [data] image_size or scale, or [data.patches] size, or free memory "
         "(`bachlab check CONFIG` estimates what a run needs)";
}

}  // namespace

}  // namespace bachlab::cli

int main(int argc, char** argv) {
  using namespace bachlab;
  CLI::App app{"bachlab: breast-cancer histology classification and deep-learning experiments"};
  app.require_subcommand(1);
  app.set_version_flag("--version",
                       std::string("bachlab ") + BACHLAB_VERSION + "\nLibTorch " + host::host_torch_version() +
                           "\nplugin SDK ABI " + host::host_abi_version());
  cli::add_plugins_commands(app);
  cli::add_config_commands(app);
  cli::add_config_keys_commands(app);
  cli::add_tune_commands(app);
  cli::add_bench_commands(app);
  cli::add_new_plugin_commands(app);
  cli::add_data_commands(app);
  cli::add_run_commands(app);
  cli::add_compare_commands(app);
  cli::add_synth_commands(app);

  // CLI11 would only say "A subcommand is required" for a misspelt command.
  std::vector<std::string> names;
  for (CLI::App* command : app.get_subcommands([](CLI::App*) { return true; })) names.push_back(command->get_name());
  if (argc > 1 && argv[1][0] != '-' && std::find(names.begin(), names.end(), argv[1]) == names.end()) {
    std::string hint = sdk::closest_match(argv[1], names);
    std::cerr << "bachlab: unknown command \"" << argv[1] << "\""
              << (hint.empty() ? "" : "; did you mean \"" + hint + "\"?") << " (see bachlab --help)\n";
    return 2;
  }
  if (argc == 1) {
    // Bare `bachlab`: what it can do, rather than CLI11's "A subcommand is required".
    std::cout << app.help();
    return 0;
  }
  cli::remember_arguments(argc, argv);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    if (code == 0) return 0;  // --help, --version
    // Every usage error exits with 2, as for an unknown command (CLI11 has one code per kind).
    const std::string hint = cli::option_hint(cli::chosen_command(app), argc, argv);
    if (!hint.empty()) std::cerr << "bachlab " << cli::chosen_command(app)->get_name() << ": " << hint << "\n";
    return 2;
  }
  try {
    // The deepest chosen command acts: `bench compare` is compare's action, not bench's.
    if (const cli::Action* action = cli::action_of(cli::chosen_command(app))) return (*action)();
    std::cerr << "bachlab: no action for this command\n";
    return 2;
  } catch (const cli::UsageError& e) {
    std::cerr << "error: " << e.what() << " (see bachlab " << cli::chosen_command(app)->get_name() << " --help)\n";
    return 2;
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  } catch (const std::filesystem::filesystem_error& e) {
    // A path the system refused (no permission, too long, a file where a folder should be):
    // the user's to fix, so said as an error about that path, not an internal one.
    std::cerr << "error: " << cli::filesystem_problem(e) << "\n";
    return 1;
  } catch (const c10::Error& e) {
    if (const std::string problem = cli::allocation_problem(e); !problem.empty()) {
      std::cerr << "error: " << problem << "\n";
      return 1;
    }
    std::cerr << "internal error: " << e.what() << "\n";
    return 3;
  } catch (const std::exception& e) {
    std::cerr << "internal error: " << e.what() << "\n";
    return 3;
  }
}
