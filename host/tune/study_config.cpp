#include "host/tune/study_config.h"

#include "host/config/toml_edit.h"
#include "host/config/toml_text.h"
#include "host/train/experiment.h"

#include <bachlab/sdk/error.h>

#include <toml++/toml.h>

#include <algorithm>
#include <set>
#include <sstream>

namespace bachlab::host {

namespace fs = std::filesystem;
using sdk::Dimension;
using sdk::Scalar;

namespace {

// Settings of the host that are paths whether or not they exist yet, and the list of
// plugin folders; any other string is made absolute only if it names an existing file or
// folder next to the config that wrote it (a plugin's weights).
const PathSettings kPathSettings = {{"data.root", "data.cache_dir"}, {"plugins.paths"}};

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

// The dimension a problem of a trial's experiment is about: the one that sets the
// problem's [table] key; null for a problem of another setting or of none.
const Dimension* dimension_of(const sdk::SearchSpace& space, const sdk::ParamProblem& problem) {
  if (problem.key.empty()) return nullptr;
  for (const auto& d : space.dimensions) {
    auto [table, key] = split_parameter(d.name);
    if (problem.table == "[" + table + "]" && problem.key == key) return &d;
  }
  return nullptr;
}

// An Error that lists no structured problems, one problem per line: without the "<n>
// problems in <file>:" header a config's error starts with, and without the trial's
// stand-in file name, which means nothing to the user.
std::vector<sdk::ParamProblem> unstructured_problems(const std::string& message, const std::string& stand_in) {
  std::vector<sdk::ParamProblem> out;
  std::istringstream lines(message);
  for (std::string line; std::getline(lines, line);) {
    if (line.find(" in " + stand_in + ":") != std::string::npos && line.find("problem") != std::string::npos) continue;
    const auto start = line.find_first_not_of(' ');
    if (start == std::string::npos) continue;
    line = line.substr(start);
    if (line.rfind(stand_in, 0) == 0)
      if (const auto end = line.find(": "); end != std::string::npos) line = line.substr(end + 2);
    out.push_back(sdk::ParamProblem{"", "", {}, line});
  }
  return out;
}

}  // namespace

std::string experiment_toml(Config& study_config, const sdk::Assignment& params, const Overrides& extra) {
  toml::table root = toml::parse(study_config.resolved_toml());
  root.erase("tune");
  make_paths_absolute(study_config, root, kPathSettings);
  for (const auto& [name, value] : params) set_dotted(root, name, value);
  for (const auto& [name, value] : extra) set_dotted(root, name, value);
  return toml_text(root);
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
    std::vector<sdk::ParamProblem> trial_problems;
    try {
      plan_experiment(trial, registry);
    } catch (const sdk::ParamsError& e) {
      trial_problems = e.problems();
    } catch (const Error& e) {
      trial_problems = unstructured_problems(e.what(), stand_in);
    }
    for (const auto& problem : trial_problems) {
      // Which dimension the problem is about: the one whose [table] key it names, else the
      // one this assignment varied.
      const Dimension* named = dimension_of(study.space, problem);
      const Dimension* about = named;
      if (!about)
        for (const auto& d : study.space.dimensions)
          if (d.name == varied) about = &d;
      // The trial's file is a stand-in: the problem is told without its origin.
      const std::string line = problem.description();
      if (!about) {
        add(file.string() + ": with every [tune.space] dimension at its first value the experiment does not build: " +
            line);
        continue;
      }
      const std::string where = study.origins[about->name].prefix() + "[tune.space." + about->name + "] ";
      if (named && problem.unknown_key) {
        add(where + "names a setting the experiment does not take: " + line);
      } else {
        add(where + "value " + sdk::to_string(assignment.at(about->name)) +
            " does not work in the experiment: " + line + "; narrow the range or drop the value");
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

}  // namespace bachlab::host
