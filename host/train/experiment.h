#pragma once
// An experiment config turned into a plan: every table read and validated, every plugin
// object built once (the model on the configured input shape), nothing trained. `bachlab
// check` uses it to validate a config completely; `bachlab run` trains the plan.
//
//   [experiment]  name (default: the config file's stem), seed (42), output ("runs"),
//                 description
//   [train]       see train_settings.h (with [train.feature_cache] for frozen backbones)
//   [data]        see host/data/data_config.h; [data.patches] see host/train/patch_sampler.h
//   [eval]        tta; [eval.patches] stride, aggregate: see host/eval/photo_prediction.h
//   [model]       plugin = "<model plugin>", then that plugin's settings
//   [optimizer]   plugin = "<optimizer plugin>" (default "adam"), then its settings
//   [[augment]]   plugin = "<augmentation plugin>", then its settings; applied in order
//   [plugins]     paths = ["folder", ...]: more plugin folders, relative to the config

#include "host/config/config.h"
#include "host/data/data_config.h"
#include "host/eval/photo_prediction.h"
#include "host/plugins/registry.h"
#include "host/train/patch_sampler.h"
#include "host/train/train_settings.h"
#include "host/train/trainer.h"

#include <bachlab/sdk/param_table.h>
#include <bachlab/sdk/model.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace bachlab::host {

/// [experiment] seed when a config sets none; [tune] seed and the split's follow it.
inline constexpr uint64_t kDefaultSeed = 42;

struct ExperimentSettings {
  /// Names the run folder and the comparison row. Default: the config file's stem.
  std::string name;
  /// One line saying what the experiment tries. Default: "".
  std::string description;
  /// Seeds model initialisation, shuffling, augmentation, dropout and (unless
  /// [data.split] seed says otherwise) the split. Default: kDefaultSeed.
  uint64_t seed = kDefaultSeed;
  /// Runs go to <output>/<name>/<timestamp>/; relative to the config file. Default: "runs".
  std::filesystem::path output = "runs";
  /// An MLflow file store (`mlruns/`, read by `mlflow ui --backend-store-uri DIR`) each run
  /// also logs its parameters, per-epoch metrics and status to (host/train/mlflow_log.h);
  /// relative to the config file. Default: empty, no MLflow log.
  std::filesystem::path mlflow;
};

/// One [ensemble.<name>] table: the config itself with `overrides` (KEY=VALUE or ~KEY, as
/// on the command line) applied, cross-validated in <run>/member-<name> (host/train/ensemble.cpp).
struct EnsembleMember {
  std::string name;
  std::vector<std::string> overrides;
};

/// Command-line overrides applied on top of the config (`--epochs`, `--seed`).
struct PlanOverrides {
  std::optional<int64_t> epochs;
  std::optional<uint64_t> seed;
};

/// The config, read and built.
struct ExperimentPlan {
  ExperimentSettings experiment;
  TrainSettings train;
  DataConfig data;
  /// [data.patches]: patch training when size > 0.
  PatchSettings patches;
  /// [eval], [eval.patches]: how a split's photos are predicted (grid, TTA, aggregation).
  PhotoPredictionSettings photo;
  std::string model_plugin;
  std::string optimizer_plugin;
  /// [optimizer] lr as configured (a schedule changes the optimizer's own value as it trains).
  double lr = 0;
  /// [ensemble.<name>] tables in file order; empty without an ensemble.
  std::vector<EnsembleMember> ensemble;
  std::vector<std::string> augmentation_plugins;
  /// What the model was built for (3 x image_size x image_size, or 3 x patch size x patch
  /// size with patches; one logit per class).
  sdk::ModelSpec spec;
  std::shared_ptr<sdk::Network> model;
  std::shared_ptr<torch::optim::Optimizer> optimizer;
  std::vector<std::shared_ptr<sdk::Augmentation>> augmentations;
  /// The [[augment]] tables' settings as text, one table a line: names the augmented
  /// copies in feature cache keys.
  std::string augmentations_key;
  int64_t trainable_parameters = 0;
  int64_t frozen_parameters = 0;
  /// What the plan changed from the config and the run should say (bf16 on a CPU without
  /// it), one line each.
  std::vector<std::string> warnings;

  /// The objects the trainer needs.
  TrainerParts trainer_parts() const;
  /// The settings shown in comparison tables: model, optimizer, lr, augment, image size,
  /// batch size, epochs, schedule, label smoothing (the last two only when used).
  std::vector<std::pair<std::string, std::string>> key_params() const;
};

/// The plugin folders of `[plugins] paths`, relative ones taken from the config's folder.
std::vector<std::filesystem::path> read_plugin_paths(Config& config);

/// Reads [experiment]; `config_path` gives the default name.
ExperimentSettings read_experiment_settings(sdk::ParamTable& table, const std::filesystem::path& config_path);

/// Reads every table, builds every plugin object, then checks the whole config. Throws
/// one Error listing every problem found (config mistakes, unknown plugins, plugin
/// errors), formatted as Config::check() does. Seeds LibTorch with the experiment seed
/// before building the model, so the same seed gives the same initial weights.
ExperimentPlan plan_experiment(Config& config, PluginRegistry& registry, const PlanOverrides& overrides = {});

}  // namespace bachlab::host
