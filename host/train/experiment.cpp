#include "host/train/experiment.h"

#include "host/train/feature_cache.h"

#include <bachlab/sdk/param_table.h>
#include <bachlab/sdk/error.h>

#include <fmt/format.h>

#include <algorithm>
#include <sstream>

namespace bachlab::host {

namespace fs = std::filesystem;

namespace {

int64_t count(const std::vector<torch::Tensor>& tensors) {
  int64_t n = 0;
  for (const auto& t : tensors) n += t.numel();
  return n;
}

std::string format_number(double value) { return sdk::to_string(sdk::Scalar(value)); }

}  // namespace

std::vector<fs::path> read_plugin_paths(Config& config) {
  sdk::ParamTable& table = config.table("plugins");
  std::optional<sdk::Value> value = table.get_value("paths");
  table.describe("paths", "path or list of paths", "[]");
  if (!value) return {};
  std::vector<std::string> folders;
  bool ok = true;
  if (const auto* one = std::get_if<std::string>(&*value)) {
    folders.push_back(*one);
  } else if (const auto* list = std::get_if<std::vector<sdk::Scalar>>(&*value)) {
    for (const auto& item : *list) {
      const auto* folder = std::get_if<std::string>(&item);
      if (!folder) ok = false;
      else folders.push_back(*folder);
    }
  } else {
    ok = false;
  }
  if (!ok) {
    table.fail("paths", "must be a folder or a list of folders, as strings (was " + std::string(sdk::type_name(*value)) +
                            " " + sdk::to_string(*value) + ")");
    return {};
  }
  // Relative to the file that wrote the key, so an extended base config's folders work.
  const fs::path base = fs::path(table.origin("paths").file).parent_path();
  std::vector<fs::path> out;
  for (const auto& folder : folders) {
    fs::path path(folder);
    out.push_back(path.is_absolute() || base.empty() ? path : base / path);
  }
  return out;
}

ExperimentSettings read_experiment_settings(sdk::ParamTable& table, const fs::path& config_path) {
  ExperimentSettings s;
  s.name = table.get_string("name", config_path.stem().string());
  table.describe("name", "", "the config file's stem");
  if (s.name.empty() || s.name.find_first_of("/\\") != std::string::npos || s.name == "." || s.name == "..")
    table.fail("name", "must be a non-empty folder name without slashes (was \"" + s.name +
                           "\"); it names the run folder");
  s.description = table.get_string("description", "");
  // get_path gives "" for "": the run folders would land in the working directory.
  if (table.has("output") && table.get_string("output", "").empty())
    table.fail("output", "must name a folder (was \"\"); leave it out for \"runs\" beside the config");
  s.seed = static_cast<uint64_t>(table.get_int("seed", static_cast<int64_t>(s.seed), {0, {}}));
  s.output = fs::path(table.get_path("output", (config_path.parent_path() / "runs").string())).lexically_normal();
  // The computed default is what `output = "runs"` gives: get_path resolves it beside the config.
  table.describe("output", "", "\"runs\"");
  s.mlflow = table.get_path("mlflow", "");
  table.describe("mlflow", "", "\"\" (no MLflow log)");
  return s;
}

TrainerParts ExperimentPlan::trainer_parts() const {
  return TrainerParts{model, optimizer, augmentations, augmentations_key};
}

std::vector<std::pair<std::string, std::string>> ExperimentPlan::key_params() const {
  std::vector<std::pair<std::string, std::string>> out;
  out.emplace_back("model", model_plugin);
  out.emplace_back("optimizer", optimizer_plugin);
  out.emplace_back("lr", optimizer ? format_number(lr) : "-");
  std::string augment;
  for (const auto& name : augmentation_plugins) augment += (augment.empty() ? "" : "+") + name;
  out.emplace_back("augment", augment.empty() ? "none" : augment);
  // What the model's input is made from: a scale (aspect kept) takes precedence over image_size.
  if (data.scale > 0)
    out.emplace_back("scale", format_number(data.scale));
  else
    out.emplace_back("image_size", std::to_string(data.image_size));
  if (data.stain_normalize != StainMethod::none) out.emplace_back("stain_normalize", kStainMethods.name(data.stain_normalize));
  if (patches.enabled()) {
    out.emplace_back("patches", std::to_string(patches.size) + " px, " + std::to_string(patches.per_image) +
                                    " per photo per epoch" +
                                    (patches.min_tissue > 0 ? ", min_tissue " + format_number(patches.min_tissue) : ""));
    out.emplace_back("photo_prediction", "grid stride " + std::to_string(photo.stride) + ", " + kAggregates.name(photo.aggregate));
  }
  if (photo.tta != Tta::none) out.emplace_back("tta", kTtas.name(photo.tta));
  if (train.precision != Precision::fp32) out.emplace_back("precision", kPrecisions.name(train.precision));
  if (train.channels_last) out.emplace_back("channels_last", "true");
  if (train.refit) out.emplace_back("refit", "true");
  out.emplace_back("batch_size", std::to_string(train.batch_size));
  out.emplace_back("epochs", std::to_string(train.epochs));
  if (data.split.folds > 0)
    out.emplace_back("cross_validation", std::to_string(data.split.folds) + "-fold" +
                                             (data.split.group == FoldGrouping::block ? ", block-grouped"
                                              : data.split.group == FoldGrouping::csv ? ", grouped by the CSV's groups"
                                                                          : ", random"));
  if (train.schedule.type != ScheduleType::none) out.emplace_back("schedule", kScheduleTypes.name(train.schedule.type));
  if (train.label_smoothing > 0) out.emplace_back("label_smoothing", format_number(train.label_smoothing));
  if (train.feature_cache.augmented_copies > 0 && model && model->frozen_features() != nullptr)
    out.emplace_back("augmented_copies", std::to_string(train.feature_cache.augmented_copies));
  if (train.early_stopping.patience > 0)
    out.emplace_back("early_stopping", train.early_stopping.monitor + "/" + std::to_string(train.early_stopping.patience));
  if (!ensemble.empty()) {
    std::string members;
    for (const auto& m : ensemble) {
      std::string overrides;
      for (const auto& o : m.overrides) overrides += (overrides.empty() ? "" : " ") + o;
      members += (members.empty() ? "" : " + ") + m.name + (overrides.empty() ? "" : " (" + overrides + ")");
    }
    out.emplace_back("ensemble", members);
  }
  return out;
}

namespace {

// [ensemble.<name>] overrides = [...]: at least two members, each a name fit for a folder and
// overrides that leave the folds alone (the members' out-of-fold predictions are averaged
// photo by photo, fold by fold).
void read_ensemble(Config& config, ExperimentPlan& plan) {
  for (const std::string& name : config.subtables("ensemble")) {
    sdk::ParamTable& table = config.table("ensemble." + name);
    EnsembleMember member{name, table.get_string_list("overrides", {})};
    table.describe("overrides", "", "[] (the config as it is)");
    if (name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != std::string::npos)
      table.fail("overrides", "belongs to a member named \"" + name + "\", which names its folder member-" + name +
                                  ": use letters, digits, '_' and '-' only");
    for (const std::string& o : member.overrides) {
      if (!Config::is_override(o)) {
        table.fail("overrides", "\"" + o + "\" is not an override; write KEY=VALUE (e.g. data.scale=0.5) or ~KEY");
        continue;
      }
      const std::string key = o.front() == '~' ? o.substr(1) : o.substr(0, o.find('='));
      if (key.rfind("data.split", 0) == 0 || key.rfind("ensemble", 0) == 0 ||
          (key.rfind("experiment", 0) == 0 && key != "experiment.seed"))
        table.fail("overrides", "\"" + o + "\": the members share the experiment and its folds (their out-of-fold "
                                "predictions are averaged photo by photo); set [experiment] (but its seed), "
                                "[data.split] and [ensemble] for the whole ensemble");
    }
    plan.ensemble.push_back(std::move(member));
  }
  if (plan.ensemble.size() == 1)
    config.table("ensemble." + plan.ensemble.front().name)
        .fail("overrides", "is the only member of [ensemble]: an ensemble needs two members or more");
  if (!plan.ensemble.empty() && plan.data.split.folds < 2)
    config.table("data.split")
        .fail("folds", fmt::format("is {}, but [ensemble] averages the members' out-of-fold predictions of a "
                                   "cross-validation; set folds = 5, say, or remove [ensemble]",
                                   plan.data.split.folds));
}

// An unknown plugin name is one problem, at the `plugin` key (file:line, or the command
// line); the table's other keys belong to the plugin that was meant, so they are not
// reported as unknown keys of a plugin that does not exist.
bool known_plugin(const PluginRegistry& registry, const std::string& kind, const std::string& name,
                  sdk::ParamTable& table) {
  if (registry.has(kind, name)) return true;
  table.fail("plugin", "= \"" + name + "\" names no " + kind + " plugin" + registry.unknown_plugin_hint(kind, name));
  for (const auto& key : table.keys()) table.get_value(key);
  return false;
}

}  // namespace

ExperimentPlan plan_experiment(Config& config, PluginRegistry& registry, const PlanOverrides& overrides) {
  ExperimentPlan plan;
  // Plugin failures are collected rather than thrown, so that one run of `bachlab check`
  // shows the mistakes of every table.
  std::vector<sdk::ParamProblem> failures;
  auto attempt = [&](auto&& build) {
    try {
      build();
    } catch (const sdk::ParamsError& e) {
      failures.insert(failures.end(), e.problems().begin(), e.problems().end());
    } catch (const Error& e) {
      // A plugin's own error names no table or key: each line stays a problem of its own.
      std::istringstream lines(e.what());
      for (std::string line; std::getline(lines, line);)
        if (!line.empty()) failures.push_back(sdk::ParamProblem{"", "", {}, line});
    }
  };

  read_plugin_paths(config);
  plan.experiment = read_experiment_settings(config.table("experiment"), config.path());
  if (overrides.seed) plan.experiment.seed = *overrides.seed;
  plan.train = read_train_settings(config);
  if (overrides.epochs) plan.train.epochs = *overrides.epochs;
  std::string precision_warning;
  plan.train.precision = resolve_precision(plan.train.precision, torch::Device(plan.train.device), precision_warning);
  if (!precision_warning.empty()) plan.warnings.push_back(precision_warning);
  plan.data = read_data_config(config, plan.experiment.seed);
  plan.warnings.insert(plan.warnings.end(), plan.data.notes.begin(), plan.data.notes.end());
  if (plan.train.refit && plan.data.split.folds < 2)
    config.table("train").fail("refit", fmt::format("retrains on every photo after a cross-validation, but [data.split] "
                                                    "folds is {}; set folds = 5, say, or remove refit",
                                                    plan.data.split.folds));
  // Beside the prepared tensors they are computed from, so one cache_dir holds both.
  plan.train.feature_cache.folder = plan.data.cache_dir / "features";

  plan.patches = read_patch_settings(config);
  plan.photo = read_photo_prediction_settings(config, plan.patches.size, plan.patches.min_tissue);
  if (plan.photo.aggregate == Aggregate::learned && plan.patches.enabled() && plan.data.split.folds < 2)
    config.table("eval.patches")
        .fail("aggregate", fmt::format("= \"learned\" is fitted on a cross-validation's out-of-fold predictions, but "
                                       "[data.split] folds is {}; set folds = 5, say, or use aggregate = \"mean\"",
                                       plan.data.split.folds));
  read_ensemble(config, plan);
  // With `scale` the photos' size is known only once they are read (the patch sampler
  // checks it then); a whole-photo model is built for one input size, which `scale` does not
  // give, so it needs patches.
  if (plan.data.scale > 0 && !plan.patches.enabled())
    config.table("data").fail("scale", "= " + fmt::format("{:g}", plan.data.scale) +
                                           " keeps each photo's own size and aspect ratio, so it needs "
                                           "[data.patches] size (the model sees patches); for whole photos use "
                                           "image_size instead");
  else if (plan.data.scale == 0 && plan.patches.size > plan.data.image_size)
    config.table("data.patches")
        .fail("size", "= " + std::to_string(plan.patches.size) + " is larger than [data] image_size = " +
                          std::to_string(plan.data.image_size) + "; use a smaller patch or a larger image");
  plan.photo.batch_size = std::max<int64_t>(plan.train.batch_size, 64);

  plan.spec.channels = 3;
  plan.spec.height = plan.spec.width = plan.patches.enabled() ? plan.patches.size : plan.data.image_size;
  plan.spec.num_classes = plan.data.classes.empty() ? 4 : static_cast<int64_t>(plan.data.classes.size());

  sdk::ParamTable& model_table = config.table("model");
  plan.model_plugin = model_table.get_string("plugin", "");
  model_table.describe("plugin", "", "required");
  if (plan.model_plugin.empty()) model_table.fail("plugin", "is required: name a model plugin, e.g. plugin = \"baseline\"");
  std::vector<sdk::ParameterGroup> trainable;
  if (!plan.model_plugin.empty() && known_plugin(registry, "model", plan.model_plugin, model_table)) {
    attempt([&] {
      torch::manual_seed(plan.experiment.seed);
      plan.model = registry.create_model(plan.model_plugin, plan.spec, model_table);
      for (auto& group : plan.model->parameter_groups()) {
        if (!group.trainable) {
          for (auto& p : group.parameters) p.set_requires_grad(false);
          plan.frozen_parameters += count(group.parameters);
          continue;
        }
        plan.trainable_parameters += count(group.parameters);
        trainable.push_back(group);
      }
      if (trainable.empty())
        throw Error(config.path().string() + ": [model] plugin \"" + plan.model_plugin +
                    "\" has no trainable parameter group; unfreeze at least one group in its settings");
    });
  }

  sdk::ParamTable& optimizer_table = config.table("optimizer");
  plan.optimizer_plugin = optimizer_table.get_string("plugin", "adam");
  if (known_plugin(registry, "optimizer", plan.optimizer_plugin, optimizer_table)) attempt([&] {
    // Without a model the optimizer is still built, on a stand-in tensor, so that its own
    // settings get checked in the same pass.
    auto groups = trainable.empty()
                      ? std::vector<sdk::ParameterGroup>{{"stand-in", {torch::zeros({1}, torch::requires_grad())}}}
                      : trainable;
    plan.optimizer = registry.create_optimizer(plan.optimizer_plugin, groups, optimizer_table);
    plan.lr = plan.optimizer->param_groups().front().options().get_lr();
    if (trainable.empty()) plan.optimizer.reset();
  });

  for (sdk::ParamTable& table : config.array("augment")) {
    std::string name = table.get_string("plugin", "");
    table.describe("plugin", "", "required");
    if (name.empty()) {
      table.fail("plugin", "is required: name an augmentation plugin, e.g. plugin = \"flip\"");
      continue;
    }
    plan.augmentation_plugins.push_back(name);
    if (!known_plugin(registry, "augmentation", name, table)) continue;
    attempt([&] {
      plan.augmentations.push_back(registry.create_augmentation(name, table));
      // The plugin's version (its defaults may change with it) and every key the table
      // gives (keys() is sorted, so equal settings give equal keys in any order).
      plan.augmentations_key += name + " " + registry.find("augmentation", name).version;
      for (const auto& key : table.keys())
        if (key != "plugin") plan.augmentations_key += " " + key + "=" + sdk::to_string(table.raw(key));
      plan.augmentations_key += "\n";
    });
  }

  // A frozen backbone's features are cached, so augmentation needs cached augmented copies
  // (FeatureCache); say so now rather than after the data is loaded.
  sdk::ParamTable& feature_cache = config.table("train.feature_cache");
  const bool frozen = plan.model && plan.model->frozen_features() != nullptr;
  const int64_t copies = plan.train.feature_cache.augmented_copies;
  if (frozen && !plan.augmentation_plugins.empty() && copies == 0)
    feature_cache.fail("augmented_copies", frozen_augmentation_problem(plan.augmentation_plugins.size()));
  if (frozen && plan.patches.enabled())
    config.table("data.patches")
        .fail("size", "must be 0 for model \"" + plan.model_plugin +
                          "\": a frozen backbone's features are cached per whole image; remove [data.patches] or "
                          "fine-tune the backbone");
  if (plan.model && copies > 0 && !(frozen && !plan.augmentation_plugins.empty()))
    feature_cache.fail("augmented_copies",
                       "= " + std::to_string(copies) + " only applies to a frozen backbone with [[augment]] tables, but " +
                           (frozen ? std::string("no [[augment]] table is configured")
                                   : "model \"" + plan.model_plugin +
                                         "\" has no frozen backbone (with mode = \"finetune\" every batch is "
                                         "augmented afresh)") +
                           "; remove augmented_copies or set it to 0");

  // A plugin's check() lists the problems of its table, which the config's list holds too.
  std::vector<sdk::ParamProblem> problems = config.structured_problems();
  for (auto& failure : failures)
    if (std::none_of(problems.begin(), problems.end(),
                     [&](const sdk::ParamProblem& p) { return p.text() == failure.text(); }))
      problems.push_back(std::move(failure));
  if (!problems.empty()) throw problems_error(config.path(), std::move(problems));
  return plan;
}

}  // namespace bachlab::host
