// `bachlab new-plugin KIND NAME [--dir D]`: a ready-to-build plugin folder (new_plugin.h).
#include "host/cli/commands.h"
#include "host/cli/new_plugin.h"
#include "host/plugins/registry.h"

#include <bachlab/sdk/error.h>

#include <iostream>

namespace bachlab::cli {

namespace fs = std::filesystem;

void add_new_plugin_commands(CLI::App& app) {
  auto* command = app.add_subcommand("new-plugin", "Write a ready-to-build plugin folder (source, CMake, test, README)");
  static std::string kind, name, dir = ".";
  command->add_option("KIND", kind, "model, augmentation, optimizer or tuner")->required();
  command->add_option("NAME", name, "Plugin name: lowercase letters, digits and _ (e.g. my_net)")->required();
  command->add_option("--dir", dir, "Create the plugin folder DIR/NAME (default: the working directory)");
  on_run(command, [] {
    check_new_plugin_args(kind, name);
    // A second plugin of a kind and name already found would be rejected as shadowed.
    host::PluginRegistry registry;
    registry.scan(host::plugin_search_path({}));
    if (registry.has(kind, name))
      throw Error(kind + " plugin \"" + name + "\" already exists (" +
                  registry.find(kind, name).path.string() +
                  "); bachlab would reject a second one as shadowed, so choose another name");
    const fs::path folder = write_new_plugin(kind, name, dir, plugin_templates_dir());
    std::cout << "wrote " << folder.string() << "/: " << kind << " plugin \"" << name << "\" (" << name
              << ".cpp), CMakeLists.txt, test_" << name << ".cpp, README.md\n"
              << "build and run it as " << (folder / "README.md").string() << " says\n";
    return 0;
  });
}

}  // namespace bachlab::cli
