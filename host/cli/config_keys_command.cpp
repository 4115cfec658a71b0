// `bachlab config-keys CONFIG... [--format text|markdown] [--update DOC | --check DOC]`: the
// config reference, from the code. Each config goes through exactly what `bachlab check`
// runs (check_config), and the keys its readers asked for, with the type, default and range
// each reader gave, are gathered over all configs: a key read only under some settings
// needs a config with those settings. Printed, each key also shows its value in each config
// ("(default)" when the config leaves it unset, "-" when its readers do not ask for it). --update rewrites the generated tables of
// docs/configs.md keeping the hand-written meanings; --check lists every difference and
// fails, which is how ctest keeps the doc from drifting (scripts/update_config_docs.sh).
#include "host/cli/commands.h"
#include "host/config/config.h"
#include "host/config/config_schema.h"
#include "host/plugins/registry.h"
#include "host/tune/tune_config.h"
#include "host/util/atomic_file.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>

#include <iostream>
#include <map>

namespace bachlab::cli {

namespace {

// Where a plugin's settings are written, for a plugin that asks for none (the others'
// tables come from the configs themselves).
std::string settings_table(const std::string& kind) {
  if (kind == "augmentation") return "[[augment]]";
  if (kind == "tuner") return "[tune.options]";
  return "[" + kind + "]";
}

}  // namespace

void add_config_keys_commands(CLI::App& app) {
  auto* command = app.add_subcommand(
      "config-keys", "Every config key the code reads, with type, default and range, over the configs given");
  static std::vector<std::string> arguments;
  static std::string format = "text";
  static std::string update;
  static std::string check;
  command->add_option("CONFIG", arguments,
                      "Configs whose readers to run (the union of their keys is printed), then KEY=VALUE overrides")
      ->required();
  command->add_option("--format", format, "text or markdown")->check(CLI::IsMember({"text", "markdown"}));
  auto* update_option =
      command->add_option("--update", update, "Rewrite the generated tables of this doc, keeping its meaning column")
          ->check(CLI::ExistingFile);
  command->add_option("--check", check, "Fail, listing every difference, unless this doc matches the code")
      ->check(CLI::ExistingFile)
      ->excludes(update_option);
  on_run(command, [] {
    const ConfigArguments given = split_config_arguments(arguments);
    const std::vector<std::string>& configs = given.files;
    if (configs.empty()) throw UsageError("bachlab config-keys needs a config file");
    host::ConfigSchema schema;
    // Every plugin some config could have loaded, by kind and name: the doc must cover all.
    std::map<std::pair<std::string, std::string>, std::string> found;
    for (const auto& file : configs) {
      host::Config config = host::Config::load(file, given.overrides);
      host::PluginRegistry registry;
      const CheckedConfig checked = check_config(config, registry);
      schema.add(config, host::reference_table);
      for (const auto& [kind, name] : checked.plugins) schema.add_plugin(kind, name, settings_table(kind));
      for (const auto& info : registry.plugins()) found.emplace(std::make_pair(info.kind, info.name), info.path.string());
    }
    if (update.empty() && check.empty()) {
      std::cout << (format == "markdown" ? schema.markdown("", true) + "\n" : schema.text());
      return 0;
    }

    std::vector<std::string> problems;
    for (const auto& [plugin, path] : found)
      if (!schema.has_plugin(plugin.first, plugin.second))
        problems.push_back(fmt::format("{} plugin \"{}\" ({}) is built by none of the configs given, so its keys are "
                                       "unknown; add a config that uses it (tests/config/schema/ holds such configs)",
                                       plugin.first, plugin.second, path));
    const std::string doc_name = update.empty() ? check : update;
    const std::string doc = host::read_file(doc_name);
    if (!update.empty()) {
      if (!problems.empty()) {
        std::string message = doc_name + " not updated:";
        for (const auto& line : problems) message += "\n  " + line;
        throw Error(message);
      }
      const std::string updated = schema.update(doc, doc_name);
      if (updated != doc) host::write_file_atomic(doc_name, updated);
      std::cout << doc_name << (updated != doc ? ": updated" : ": already up to date") << "\n";
      // What is left to do by hand: new rows have no meaning yet.
      for (const auto& line : schema.drift(updated, doc_name)) std::cout << "  " << line << "\n";
      return 0;
    }
    for (const auto& line : schema.drift(doc, doc_name)) problems.push_back(line);
    if (problems.empty()) {
      std::cout << doc_name << ": up to date with the keys read by " << configs.size() << " configs\n";
      return 0;
    }
    std::cout << doc_name << " does not match the code (" << problems.size()
              << (problems.size() == 1 ? " problem" : " problems") << "):\n";
    for (const auto& line : problems) std::cout << "  " << line << "\n";
    return 1;
  });
}

}  // namespace bachlab::cli
