// bachlab: classify breast-cancer histology photos and run, compare and tune experiments.
#include "host/cli/commands.h"
#include "host/plugins/registry.h"

#include <bachlab/sdk/error.h>
#include <bachlab/sdk/params.h>

#include <algorithm>
#include <iostream>
#include <map>

namespace bachlab::cli {

namespace {
std::map<CLI::App*, Action>& actions() {
  static std::map<CLI::App*, Action> table;
  return table;
}
}  // namespace

void on_run(CLI::App* command, Action action) { actions()[command] = std::move(action); }

}  // namespace bachlab::cli

int main(int argc, char** argv) {
  using namespace bachlab;
  CLI::App app{"bachlab: breast-cancer histology classification and deep-learning experiments"};
  app.require_subcommand(1);
  app.set_version_flag("--version",
                       std::string("bachlab ") + BACHLAB_VERSION + "\nLibTorch " + host::host_torch_version() +
                           "\nplugin SDK ABI " + host::host_abi_version());
  cli::add_plugins_commands(app);
  cli::add_config_keys_commands(app);
  cli::add_tune_commands(app);
  cli::add_bench_commands(app);
  cli::add_new_plugin_commands(app);
  cli::add_data_commands(app);
  cli::add_run_commands(app);
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
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    // The deepest chosen command acts: `bench compare` is compare's action, not bench's.
    CLI::App* chosen = &app;
    while (!chosen->get_subcommands().empty()) chosen = chosen->get_subcommands().front();
    auto it = cli::actions().find(chosen);
    if (it != cli::actions().end()) return it->second();
    std::cerr << "bachlab: no action for this command\n";
    return 2;
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "internal error: " << e.what() << "\n";
    return 3;
  }
}
