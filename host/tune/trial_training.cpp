#include "host/tune/trial_training.h"

#include "host/config/toml_text.h"
#include "host/util/atomic_file.h"
#include "host/util/cache_key.h"
#include "host/train/experiment.h"
#include "host/train/runner.h"
#include "host/tune/study_report.h"

#include <bachlab/sdk/param_table.h>
#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <regex>
#include <set>
#include <sstream>

namespace bachlab::host {

namespace fs = std::filesystem;
using sdk::Dimension;
using sdk::Scalar;

namespace {

// Settings of the host that are paths; any other string is made absolute only if it
// names an existing file or folder next to the config that wrote it (a plugin's weights).
const std::set<std::string> kPathKeys = {"data.root", "data.cache_dir"};

void set_dotted(toml::table& root, const std::string& name, const Scalar& value) {
  toml::table* table = &root;
  std::stringstream parts(name);
  std::vector<std::string> keys;
  for (std::string part; std::getline(parts, part, '.');) keys.push_back(part);
  for (size_t i = 0; i + 1 < keys.size(); ++i) {
    auto* child = table->get_as<toml::table>(keys[i]);
    if (!child) child = table->insert_or_assign(keys[i], toml::table{}).first->second.as_table();
    table = child;
  }
  std::visit([&](auto&& v) { table->insert_or_assign(keys.back(), v); }, value);
}

// Makes relative paths absolute, each against the folder of the file that wrote it.
void absolutize(Config& config, toml::table& table, const std::string& name) {
  for (auto&& [key, node] : table) {
    const std::string k(key.str());
    const std::string full = name.empty() ? k : name + "." + k;
    if (auto* child = node.as_table()) {
      absolutize(config, *child, full);
      continue;
    }
    if (name.empty()) continue;
    if (auto* text = node.as_string()) {
      const std::string value = text->get();
      if (value.empty() || fs::path(value).is_absolute()) continue;
      sdk::ParamTable copy = config.table(name);  // a copy: resolving must not mark keys as read
      const fs::path resolved = copy.get_path(k, "");
      if (resolved.empty() || resolved == fs::path(value)) {
        // No folder part in the origin: the config sat in the working directory.
        if (!kPathKeys.count(full) && !fs::exists(value)) continue;
      } else if (!kPathKeys.count(full) && !fs::exists(resolved)) {
        continue;
      }
      *text = fs::absolute(resolved.empty() ? fs::path(value) : resolved).lexically_normal().string();
    } else if (auto* list = node.as_array(); list && full == "plugins.paths") {
      const fs::path base = fs::absolute(config.path()).parent_path();
      for (auto&& element : *list)
        if (auto* text = element.as_string(); text && !fs::path(text->get()).is_absolute())
          *text = (base / text->get()).lexically_normal().string();
    }
  }
}

// First value of a dimension: the base every validation assignment varies from.
Scalar first_value(const Dimension& d) {
  switch (d.type) {
    case Dimension::Type::Int: return d.int_min;
    case Dimension::Type::Float: return d.float_min;
    case Dimension::Type::Choice: return d.choices.front();
    case Dimension::Type::Bool: return false;
    case Dimension::Type::Fixed: break;
  }
  return d.fixed;
}

// The values worth building the experiment with: the ends of ranges, every choice.
std::vector<Scalar> extreme_values(const Dimension& d) {
  switch (d.type) {
    case Dimension::Type::Int: {
      const int64_t last = d.int_min + (d.int_max - d.int_min) / d.int_step * d.int_step;
      return {d.int_min, last};
    }
    case Dimension::Type::Float: return {d.float_min, d.float_max};
    case Dimension::Type::Choice: return d.choices;
    case Dimension::Type::Bool: return {false, true};
    case Dimension::Type::Fixed: break;
  }
  return {d.fixed};
}

// `a` with inactive dimensions dropped and newly active ones at their first value.
sdk::Assignment consistent(const sdk::SearchSpace& space, const sdk::Assignment& a) {
  sdk::Assignment out;
  for (const auto& d : space.dimensions) {
    if (!sdk::SearchSpace::active(d, out)) continue;
    auto it = a.find(d.name);
    out[d.name] = it != a.end() ? it->second : first_value(d);
  }
  return out;
}

// The problem lines of a plan's Error, without the header and the stand-in file prefix.
std::vector<std::string> problem_lines(const std::string& message, const std::string& stand_in) {
  std::vector<std::string> out;
  std::istringstream lines(message);
  const std::regex prefix("^\\s*" + std::regex_replace(stand_in, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") +
                          R"((:\d+)?: )");
  for (std::string line; std::getline(lines, line);) {
    if (line.find(" in " + stand_in + ":") != std::string::npos && line.find("problem") != std::string::npos) continue;
    line = std::regex_replace(line, prefix, "");
    const auto start = line.find_first_not_of(' ');
    if (start != std::string::npos) out.push_back(line.substr(start));
  }
  return out;
}

std::optional<RunSummary> finished_run(const fs::path& run_dir, int64_t epochs) {
  const fs::path file = run_dir / "metrics.json";
  if (run_dir.empty() || !fs::exists(file)) return std::nullopt;
  RunSummary summary = run_summary_from_json(nlohmann::json::parse(read_file(file)), file);
  if (static_cast<int64_t>(summary.history.size()) < epochs && !summary.stopped_early) return std::nullopt;
  return summary;
}

// The split must not move between trials and executions: pin it to the experiment's seed
// unless the config pins it itself.
Overrides pinned_split(Config& config) {
  sdk::ParamTable split = config.table("data.split");
  if (split.has("seed")) return {};
  sdk::ParamTable experiment = config.table("experiment");
  int64_t seed = 42;
  if (experiment.has("seed"))
    if (const auto* s = std::get_if<int64_t>(&experiment.raw("seed"))) seed = *s;
  return {{"data.split.seed", seed}};
}

}  // namespace

std::string experiment_toml(Config& study_config, const sdk::Assignment& params, const Overrides& extra) {
  toml::table root = toml::parse(study_config.resolved_toml());
  root.erase("tune");
  absolutize(study_config, root, "");
  for (const auto& [name, value] : params) set_dotted(root, name, value);
  for (const auto& [name, value] : extra) set_dotted(root, name, value);
  return toml_text(root);
}

double run_objective(const RunSummary& run, const TuneSettings& settings) {
  double best = NAN;
  for (const auto& record : run.history) {
    const double v = metric_value(record, settings.objective);
    if (!std::isfinite(v)) continue;
    if (!std::isfinite(best) || (settings.maximize ? v > best : v < best)) best = v;
  }
  return best;
}

StudyConfig load_study_config(const fs::path& file, PluginRegistry& registry) {
  Config config = Config::load(file);
  return load_study_config(config, registry);
}

StudyConfig load_study_config(Config& config, PluginRegistry& registry) {
  const fs::path file = config.path();
  if (registry.folders().empty()) registry.scan(plugin_search_path(read_plugin_paths(config)));
  StudyConfig study{file, read_tune_settings(config), {}, {}, sdk::ParamTable()};
  study.space = read_search_space(config, &study.origins);

  // The tuner reads its settings from the config's own table, so its mistakes and unknown
  // keys are reported with the experiment's, in one pass.
  std::string tuner_failure;
  try {
    registry.create_tuner(study.settings.tuner, study.space, study_settings(study.settings), tuner_params(config));
  } catch (const Error& e) {
    if (tuner_params(config).problems().empty()) tuner_failure = e.what();
  }
  study.tuner_params = tuner_params(config);
  ExperimentPlan plan = plan_experiment(config, registry);
  study.data = plan.data;
  if (!tuner_failure.empty()) throw Error(file.string() + ": [tune] tuner: " + tuner_failure);

  // Each dimension at each end of its range (every value of a choice), the others at their
  // first value: a misspelt setting, a plugin name that does not exist or a value a plugin
  // rejects shows up here, before any trial trains.
  sdk::Assignment base;
  for (const auto& d : study.space.dimensions)
    if (sdk::SearchSpace::active(d, base)) base[d.name] = first_value(d);
  std::vector<std::pair<std::string, sdk::Assignment>> variants = {{"", base}};
  std::set<sdk::Assignment> seen = {base};
  for (const auto& d : study.space.dimensions) {
    if (!base.count(d.name) && d.parent.empty()) continue;
    for (const auto& v : extreme_values(d)) {
      sdk::Assignment a = base;
      if (!d.parent.empty() && !base.count(d.name)) {
        auto parent = std::find_if(study.space.dimensions.begin(), study.space.dimensions.end(),
                                   [&](const Dimension& p) { return p.name == d.parent; });
        if (parent == study.space.dimensions.end() || d.parent_values.empty()) continue;
        a[d.parent] = d.parent_values.front();
      }
      a[d.name] = v;
      a = consistent(study.space, a);
      if (seen.insert(a).second) variants.emplace_back(d.name, a);
    }
  }
  const std::string stand_in = "(trial)";
  std::vector<std::string> problems;
  auto add = [&](const std::string& line) {
    if (std::find(problems.begin(), problems.end(), line) == problems.end()) problems.push_back(line);
  };
  for (const auto& [varied, assignment] : variants) {
    Config trial = Config::parse(experiment_toml(config, assignment), stand_in);
    try {
      plan_experiment(trial, registry);
    } catch (const Error& e) {
      for (const auto& line : problem_lines(e.what(), stand_in)) {
        // Which dimension the problem is about: the one whose [table] key it names, else
        // the one this assignment varied.
        const Dimension* about = nullptr;
        for (const auto& d : study.space.dimensions) {
          auto [table, key] = split_parameter(d.name);
          if (line.find("[" + table + "] unknown key \"" + key + "\"") != std::string::npos ||
              line.find("[" + table + "] " + key + " ") != std::string::npos)
            about = &d;
        }
        if (!about)
          for (const auto& d : study.space.dimensions)
            if (d.name == varied) about = &d;
        if (!about) {
          add(file.string() + ": with every [tune.space] dimension at its first value the experiment does not build: " +
              line);
          continue;
        }
        const std::string where = study.origins[about->name].prefix() + "[tune.space." + about->name + "] ";
        auto [table, key] = split_parameter(about->name);
        if (line.find("unknown key \"" + key + "\"") != std::string::npos) {
          add(where + "names a setting the experiment does not take: " + line);
        } else {
          add(where + "value " + sdk::to_string(assignment.at(about->name)) +
              " does not work in the experiment: " + line + "; narrow the range or drop the value");
        }
      }
    }
  }
  if (!problems.empty()) {
    std::string message = std::to_string(problems.size()) + (problems.size() == 1 ? " problem" : " problems") +
                          " in " + file.string() + ":";
    for (const auto& line : problems) message += "\n  " + line;
    throw Error(message);
  }
  return study;
}

namespace {

// execution-<e>/trial-key.txt: what the execution's runs were trained with (the trial's
// experiment, every study setting and the seed). A trial folder whose key differs belongs
// to another trial that had the same id (study.db removed and the study begun again with
// another space): nothing in it may be reused.
const char* const kTrialKeyFile = "trial-key.txt";

std::string trial_key(Config& config, const sdk::Assignment& params, const Overrides& extra, uint64_t seed) {
  return fmt::format("bachlab trial key 1\nseed {}\n", seed) +
         toml_digest_text(toml::parse(experiment_toml(config, params, extra)));
}

bool key_matches(const fs::path& execution_root, const std::string& key) {
  const fs::path file = execution_root / kTrialKeyFile;
  return fs::exists(file) && read_file(file) == key;
}

}  // namespace

TrialFunction training_trial_function(const StudyConfig& study, const TrainingTrialOptions& options) {
  return [study, options](const TrialRequest& request) -> TrialResult {
    Config config = Config::load(study.file, study.overrides);
    const Overrides pinned = pinned_split(config);
    double sum = 0;
    int64_t used = 0;
    for (int64_t e = 0; e < study.settings.executions_per_trial; ++e) {
      const std::string name = "execution-" + std::to_string(e);
      const fs::path execution_root = request.folder / name;
      Overrides keyed = pinned;  // everything the experiment file gets but the thread count
      keyed.emplace_back("experiment.name", name);
      keyed.emplace_back("experiment.output", ".");
      const uint64_t seed = study.settings.seed + static_cast<uint64_t>(e);
      const std::string key = trial_key(config, request.trial.params, keyed, seed);
      if (fs::exists(execution_root) && !key_matches(execution_root, key)) {
        if (options.progress)
          *options.progress << fmt::format("trial {}: {} was trained with other settings or data; starting it again\n",
                                           request.trial.id, execution_root.string());
        fs::remove_all(execution_root);
      }
      fs::path run_dir = newest_run_in(execution_root);
      int64_t before = 0;
      if (run_dir.empty() && request.trial.resume_from >= 0) {
        // A promotion starts as a copy of its parent's run and trains it further.
        const fs::path parent = newest_run_in(request.parent_folder / name);
        auto parent_summary = finished_run(parent, 0);
        if (!parent_summary)
          throw Error(fmt::format("{}: trial {} continues trial {}, whose run has no metrics.json; the parent trial "
                                  "did not finish, so this one cannot continue it",
                                  (request.parent_folder / name).string(), request.trial.id,
                                  request.trial.resume_from));
        if (!key_matches(request.parent_folder / name, key))
          throw Error(fmt::format("{}: trial {} continues trial {}, but that folder was trained with other settings "
                                  "(its {} differs); run the study again from a fresh folder",
                                  (request.parent_folder / name).string(), request.trial.id,
                                  request.trial.resume_from, kTrialKeyFile));
        // Copied under a temporary name and renamed, so a kill mid-copy leaves no half run.
        run_dir = execution_root / parent.filename();
        const fs::path partial = execution_root / (parent.filename().string() + ".partial");
        fs::create_directories(execution_root);
        fs::remove_all(partial);
        fs::copy(parent, partial, fs::copy_options::recursive);
        fs::remove(partial / "metrics.json");
        fs::rename(partial, run_dir);
      }
      fs::create_directories(execution_root);
      if (!key_matches(execution_root, key)) write_file_atomic(execution_root / kTrialKeyFile, key);
      RunOptions run;
      run.progress = options.progress;
      run.plugin_paths = options.plugin_paths;
      run.overrides.epochs = request.trial.epochs;
      std::optional<RunSummary> summary = finished_run(run_dir, request.trial.epochs);
      if (summary) check_run_photos(run_dir);
      if (!summary) {
        const fs::path file = request.folder / (name + ".toml");
        if (!run_dir.empty()) {
          run.resume = run_dir;
        } else {
          Overrides extra = keyed;
          if (options.threads > 0) extra.emplace_back("train.threads", options.threads);
          write_file_atomic(file, fmt::format("# Trial {}, execution {} of the study {}: its experiment as run.\n",
                                              request.trial.id, e, study.file.string()) +
                                      experiment_toml(config, request.trial.params, extra));
          run.overrides.seed = seed;
        }
        summary = run_experiment(file, run);
      }
      if (request.trial.resume_from >= 0) {
        auto parent_summary = finished_run(newest_run_in(request.parent_folder / name), 0);
        before = parent_summary ? static_cast<int64_t>(parent_summary->history.size()) : 0;
      }
      for (const auto& record : summary->history)
        if (!std::isfinite(record.train.loss))
          throw Error(fmt::format("training diverged: train_loss was {} at epoch {} of execution {} (run folder {}); "
                                  "a smaller learning rate usually helps",
                                  record.train.loss, record.epoch, e, summary->run_dir));
      const double objective = run_objective(*summary, study.settings);
      sum += objective;
      used += static_cast<int64_t>(summary->history.size()) - before;
    }
    const auto n = static_cast<double>(study.settings.executions_per_trial);
    return TrialResult{sum / n, static_cast<int64_t>(std::llround(static_cast<double>(used) / n))};
  };
}

bool write_best_trial_config(const StudyConfig& study, const std::vector<StoredTrial>& trials, const fs::path& folder) {
  auto best = best_trial(trials);
  if (!best) return false;
  Config config = Config::load(study.file, study.overrides);
  Overrides extra = pinned_split(config);
  extra.emplace_back("experiment.name", study.file.stem().string() + "-best");
  extra.emplace_back("experiment.seed", static_cast<int64_t>(study.settings.seed));
  extra.emplace_back("train.epochs", best->record.epochs);
  const std::string header = fmt::format(
      "# The best trial (trial {}, {} = {}) of the study {}, as a runnable experiment:\n#   bachlab run {}\n",
      best->record.id, study.settings.objective, sdk::to_string(Scalar(best->objective)), study.file.string(),
      (folder / "best_trial.toml").string());
  write_file_atomic(folder / "best_trial.toml", header + experiment_toml(config, best->record.params, extra));
  return true;
}

std::vector<RunSummary> retrain_top_trials(const StudyConfig& study, const std::vector<StoredTrial>& trials,
                                           const TrainingTrialOptions& options) {
  std::vector<RunSummary> out;
  Config config = Config::load(study.file, study.overrides);
  const fs::path top = study.settings.folder / "top";
  fs::create_directories(top);
  const auto best = top_trials(trials, study.settings.top_k);
  auto top_name = [&](size_t rank) { return fmt::format("{}-trial-{:04d}", rank + 1, best[rank].record.id); };
  // A study that took more trials (max_trials raised) may rank others first: the retrains
  // of trials no longer in their place go, so top/ holds the current ranking alone.
  std::set<std::string> current;
  for (size_t rank = 0; rank < best.size(); ++rank) {
    current.insert(top_name(rank));
    current.insert(top_name(rank) + ".toml");
  }
  static const std::regex retrain_name("[0-9]+-trial-[0-9]+(\\.toml)?");
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(top, ec)) {
    const std::string name = entry.path().filename().string();
    if (std::regex_match(name, retrain_name) && !current.count(name)) fs::remove_all(entry.path(), ec);
  }
  int rank = 0;
  for (const auto& trial : best) {
    const std::string name = top_name(rank++);
    // A folder of this name may hold another study's retrain (study.db removed and the
    // study begun again with another seed or space): reused only when its key matches.
    Overrides keyed = pinned_split(config);
    keyed.emplace_back("experiment.name", name);
    keyed.emplace_back("experiment.output", ".");
    const std::string key = trial_key(config, trial.record.params, keyed, study.settings.seed);
    const fs::path root = top / name;
    if (fs::exists(root) && !key_matches(root, key)) {
      if (options.progress)
        *options.progress << fmt::format("{}: retrained with other settings, seed or data than trial {} of this "
                                         "study; training it again\n",
                                         root.string(), trial.record.id);
      fs::remove_all(root);
    }
    fs::create_directories(root);
    if (!key_matches(root, key)) write_file_atomic(root / kTrialKeyFile, key);
    const fs::path run_dir = newest_run_in(root);
    if (auto done = finished_run(run_dir, trial.record.epochs)) {
      check_run_photos(run_dir);
      out.push_back(*done);
      continue;
    }
    RunOptions run;
    run.progress = options.progress;
    run.plugin_paths = options.plugin_paths;
    run.overrides.epochs = trial.record.epochs;
    const fs::path file = top / (name + ".toml");
    if (!run_dir.empty()) {
      run.resume = run_dir;
    } else {
      Overrides extra = keyed;
      if (options.threads > 0) extra.emplace_back("train.threads", options.threads);
      write_file_atomic(file, fmt::format("# Rank {} of the study {}: trial {} ({} = {}) retrained and tested.\n", rank,
                                          study.file.string(), trial.record.id, study.settings.objective,
                                          sdk::to_string(Scalar(trial.objective))) +
                                  experiment_toml(config, trial.record.params, extra));
      run.overrides.seed = study.settings.seed;
    }
    out.push_back(run_experiment(file, run));
  }
  return out;
}

}  // namespace bachlab::host
