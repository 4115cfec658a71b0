// `bachlab plugins`: what was found where, and what was rejected and why. `bachlab check`:
// every reader of a config run once (check_config, which `bachlab config-keys` reuses).
#include "host/cli/commands.h"
#include "host/config/config.h"
#include "host/plugins/registry.h"
#include "host/train/experiment.h"
#include "host/tune/trial_training.h"

#include <fmt/format.h>

#include <iostream>

namespace bachlab::cli {

CheckedConfig check_config(host::Config& config, host::PluginRegistry& registry) {
  registry.scan(host::plugin_search_path(host::read_plugin_paths(config)));
  CheckedConfig out;
  if (config.contains("tune")) {
    // A study config: its experiment part, its search space and its tuner together.
    host::StudyConfig study = host::load_study_config(config, registry);
    out.summary = fmt::format("OK - study with {} dimensions, tuner {}", study.space.dimensions.size(),
                              study.settings.tuner);
    out.plugins.emplace_back("tuner", study.settings.tuner);
    return out;
  }
  host::ExperimentPlan plan = host::plan_experiment(config, registry);
  out.summary = fmt::format("OK - {}: model {} ({} trainable, {} frozen parameters), optimizer {}, {} augmentation(s)",
                            plan.experiment.name, plan.model_plugin, plan.trainable_parameters,
                            plan.frozen_parameters, plan.optimizer_plugin, plan.augmentation_plugins.size());
  out.plugins.emplace_back("model", plan.model_plugin);
  out.plugins.emplace_back("optimizer", plan.optimizer_plugin);
  for (const auto& name : plan.augmentation_plugins) out.plugins.emplace_back("augmentation", name);
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

  auto* check = app.add_subcommand("check", "Validate configs and every plugin they name, without running anything");
  static std::vector<std::string> configs;
  check->add_option("CONFIG", configs, "Experiment config files (TOML)")->required()->check(CLI::ExistingFile);
  on_run(check, [] {
    int failed = 0;
    for (const auto& file : configs) {
      try {
        host::Config config = host::Config::load(file);
        host::PluginRegistry registry;
        const std::string summary = check_config(config, registry).summary;
        std::cout << file << ": " << summary << "\n";
      } catch (const Error& e) {
        ++failed;
        std::cout << e.what() << "\n";
      }
    }
    return failed == 0 ? 0 : 1;
  });
}

}  // namespace bachlab::cli
