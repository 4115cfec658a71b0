// `bachlab plugins`: what was found where, and what was rejected and why.
#include "host/cli/commands.h"
#include "host/plugins/registry.h"

#include <fmt/format.h>

#include <iostream>

namespace bachlab::cli {

void add_plugins_commands(CLI::App& app) {
  auto* plugins = app.add_subcommand("plugins", "List every plugin found, then every file rejected and why");
  static std::string kind;
  static std::vector<std::string> extra_paths;
  plugins->add_option("--kind", kind, "Only this kind")
      ->check(CLI::IsMember({"model", "augmentation", "optimizer", "tuner"}));
  plugins->add_option("--path", extra_paths, "Also search this folder (after the built-in one)");
  on_run(plugins, [] {
    host::PluginRegistry registry;
    registry.scan(host::plugin_search_path(std::vector<std::filesystem::path>(extra_paths.begin(), extra_paths.end())));
    std::cout << host::format_plugin_listing(registry, kind);
    return 0;
  });
}

}  // namespace bachlab::cli
