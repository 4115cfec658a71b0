#include "host/cli/commands.h"

#include <map>

namespace bachlab::cli {

namespace {
std::map<CLI::App*, Action>& actions() {
  static std::map<CLI::App*, Action> table;
  return table;
}
}  // namespace

void on_run(CLI::App* command, Action action) { actions()[command] = std::move(action); }

const Action* action_of(CLI::App* command) {
  auto it = actions().find(command);
  return it == actions().end() ? nullptr : &it->second;
}

namespace {
std::vector<std::string>& arguments() {
  static std::vector<std::string> list;
  return list;
}
}  // namespace

void remember_arguments(int argc, char** argv) { arguments().assign(argv + 1, argv + argc); }

const std::vector<std::string>& program_arguments() { return arguments(); }

}  // namespace bachlab::cli
