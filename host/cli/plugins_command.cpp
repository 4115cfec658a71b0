// `bachlab plugins`: what was found where, and what was rejected and why. `bachlab check`:
// every reader of a config run once (check_config, which `bachlab config-keys` reuses).
#include "host/cli/commands.h"
#include "host/config/config.h"
#include "host/data/dataset.h"
#include "host/plugins/registry.h"
#include "host/train/experiment.h"
#include "host/train/runner.h"
#include "host/tune/study_config.h"

#include <fmt/format.h>

#include <iostream>

namespace bachlab::cli {

CheckedConfig check_config(host::Config& config, host::PluginRegistry& registry,
                           const std::vector<std::filesystem::path>& extra_plugin_paths) {
  // As `bachlab run` searches: --plugin-path folders first, then the config's own.
  std::vector<std::filesystem::path> folders = extra_plugin_paths;
  for (auto& folder : host::read_plugin_paths(config)) folders.push_back(folder);
  registry.scan(host::plugin_search_path(folders));
  CheckedConfig out;
  if (config.contains("tune")) {
    // A study config: its experiment part, its search space and its tuner together.
    host::StudyConfig study = host::load_study_config(config, registry);
    out.summary = fmt::format("OK - study with {} dimensions, tuner {}", study.space.dimensions.size(),
                              study.settings.tuner);
    out.plugins.emplace_back("tuner", study.settings.tuner);
    out.data = study.data;
    return out;
  }
  host::ExperimentPlan plan = host::plan_experiment(config, registry);
  out.summary = fmt::format("OK - {}: model {} ({} trainable, {} frozen parameters), optimizer {}, {} augmentation(s)",
                            plan.experiment.name, plan.model_plugin, plan.trainable_parameters,
                            plan.frozen_parameters, plan.optimizer_plugin, plan.augmentation_plugins.size());
  out.plugins.emplace_back("model", plan.model_plugin);
  out.plugins.emplace_back("optimizer", plan.optimizer_plugin);
  for (const auto& name : plan.augmentation_plugins) out.plugins.emplace_back("augmentation", name);
  // The members' memory is estimated by `run` before it trains (that reads every photo's size).
  for (const auto& line : host::check_ensemble_members(config, plan, folders, false)) out.summary += "\n  " + line;
  for (const auto& warning : plan.warnings) out.summary += "\n  warning: " + warning;
  out.data = plan.data;
  out.plan = std::make_shared<const host::ExperimentPlan>(std::move(plan));
  return out;
}

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

  auto* check = app.add_subcommand(
      "check", "Validate configs, every plugin they name and their photos (listed, not decoded), running nothing");
  static std::vector<std::string> arguments;
  static bool no_data = false;
  static std::vector<std::string> check_plugin_paths;
  check->add_option("CONFIG", arguments, "Experiment config files (TOML), then KEY=VALUE overrides")->required();
  // One folder per --plugin-path (repeat it for more), so a config after it stays a config.
  check->add_option("--plugin-path", check_plugin_paths, "Also search this folder for plugins (repeatable)")
      ->allow_extra_args(false);
  check->add_flag("--no-data", no_data, "Check the configs only, not their photos");
  on_run(check, [] {
    const ConfigArguments given = split_config_arguments(arguments);
    if (given.files.empty()) throw UsageError("bachlab check needs a config file (e.g. bachlab check configs/model4a.toml)");
    int failed = 0;
    for (const auto& file : given.files) {
      try {
        host::Config config = host::Config::load(file, given.overrides);
        host::PluginRegistry registry;
        const CheckedConfig checked = check_config(
            config, registry, std::vector<std::filesystem::path>(check_plugin_paths.begin(), check_plugin_paths.end()));
        if (no_data) {
          std::cout << file << ": " << checked.summary << "; data not checked (--no-data)\n";
          continue;
        }
        // OK only if `run` would start: the photos are there, in every class.
        const std::string data = host::check_dataset(checked.data);
        std::string memory;
        if (checked.plan) memory = "\n  memory: " + host::check_run_can_start(*checked.plan, file).describe();
        std::cout << file << ": " << checked.summary << "\n  data: " << data << memory << "\n";
      } catch (const Error& e) {
        ++failed;
        std::cout << e.what() << "\n";
      }
    }
    return failed == 0 ? 0 : 1;
  });
}

}  // namespace bachlab::cli
