#pragma once
// A study config: an experiment config with [tune], [tune.space.*] and [tune.options]
// tables. Reading one checks it whole before any trial trains (the experiment builds with
// each extreme value of each dimension, the tuner accepts its settings), and gives each
// trial's experiment as TOML: the study config with the trial's values written over it.

#include "host/config/config.h"
#include "host/data/data_config.h"
#include "host/plugins/registry.h"
#include "host/tune/tune_config.h"

#include <bachlab/sdk/param_table.h>
#include <bachlab/sdk/search_space.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace bachlab::host {

/// A study config, read and checked.
struct StudyConfig {
  std::filesystem::path file;
  TuneSettings settings;
  sdk::SearchSpace space;
  DimensionOrigins origins;
  /// The [tune.options] settings, for creating the tuner.
  sdk::ParamTable tuner_params;
  /// The experiment's [data] (for `bachlab check`).
  DataConfig data;
  /// Command-line KEY=VALUE overrides, applied each time the study's file is read.
  std::vector<std::string> overrides;
};

/// Reads [tune], [tune.space.*] and [tune.options] of `file`, checks that the experiment part
/// builds and that every dimension addresses a setting the experiment takes (building the
/// experiment with each extreme value of each dimension), and that the tuner accepts its
/// settings. Throws one Error listing every problem with file, line and key.
StudyConfig load_study_config(const std::filesystem::path& file, PluginRegistry& registry);
/// The same for a config already loaded; its tables keep what the readers asked of them
/// (for `bachlab config-keys`).
StudyConfig load_study_config(Config& config, PluginRegistry& registry);

/// Values written over the study config for one execution, besides the trial's own.
using Overrides = std::vector<std::pair<std::string, sdk::Scalar>>;

/// The experiment config of a trial as TOML: the study config (every `extends` merged)
/// without its [tune] tables, with `params` and `extra` written over it ("table.key" =
/// value). Relative paths are made absolute, so the file runs from any folder.
std::string experiment_toml(Config& study_config, const sdk::Assignment& params, const Overrides& extra = {});

}  // namespace bachlab::host
