#pragma once
// Tuner plugins driven on known functions, with no training: each proposal is scored at
// once and appended to the history, as a study with one worker would.
#include "host/plugins/registry.h"

#include <bachlab/sdk/param_table.h>
#include <bachlab/sdk/tuner.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace bachlab::host::testing {

inline PluginRegistry& tuner_registry() {
  static PluginRegistry* registry = [] {
    auto* r = new PluginRegistry();
    r->scan({BACHLAB_TEST_PLUGIN_DIR});
    return r;
  }();
  return *registry;
}

inline sdk::Dimension int_dimension(const std::string& name, int64_t min, int64_t max, int64_t step) {
  sdk::Dimension d;
  d.name = name;
  d.type = sdk::Dimension::Type::Int;
  d.int_min = min;
  d.int_max = max;
  d.int_step = step;
  return d;
}

inline sdk::Dimension float_dimension(const std::string& name, double min, double max, bool log = false) {
  sdk::Dimension d;
  d.name = name;
  d.type = sdk::Dimension::Type::Float;
  d.float_min = min;
  d.float_max = max;
  d.log = log;
  return d;
}

inline sdk::Dimension choice_dimension(const std::string& name, std::vector<sdk::Scalar> values) {
  sdk::Dimension d;
  d.name = name;
  d.type = sdk::Dimension::Type::Choice;
  d.choices = std::move(values);
  return d;
}

inline std::shared_ptr<sdk::Tuner> make_tuner(const std::string& name, const sdk::SearchSpace& space,
                                              int64_t max_trials, uint64_t seed, sdk::ParamTable params = sdk::ParamTable("[tune.options]"),
                                              int64_t epochs = 10) {
  sdk::StudySettings settings;
  settings.max_trials = max_trials;
  settings.epochs = epochs;
  settings.seed = seed;
  return tuner_registry().create_tuner(name, space, settings, params);
}

inline double as_number(const sdk::Scalar& s) {
  if (const auto* d = std::get_if<double>(&s)) return *d;
  if (const auto* i = std::get_if<int64_t>(&s)) return static_cast<double>(*i);
  return NAN;
}

/// Asks until Done, scoring each proposal with `score` (larger is better); returns the history.
inline std::vector<sdk::TrialRecord> simulate(sdk::Tuner& tuner,
                                              const std::function<double(const sdk::TrialRecord&)>& score,
                                              size_t limit = 100000) {
  std::vector<sdk::TrialRecord> history;
  while (history.size() < limit) {
    sdk::Proposal p = tuner.ask(history);
    if (p.kind != sdk::Proposal::Kind::Run) break;
    sdk::TrialRecord t;
    t.id = static_cast<int64_t>(history.size());
    t.params = p.params;
    t.epochs = p.epochs;
    t.resume_from = p.resume_from;
    t.state = sdk::TrialRecord::State::Complete;
    t.score = score(t);
    history.push_back(std::move(t));
  }
  return history;
}

/// Branin-Hoo on x1 in [-5, 10], x2 in [0, 15]; global minimum 0.397887.
inline double branin(double x1, double x2) {
  const double pi = 3.14159265358979323846;
  const double b = 5.1 / (4 * pi * pi), c = 5 / pi, t = 1 / (8 * pi);
  const double a = x2 - b * x1 * x1 + c * x1 - 6;
  return a * a + 10 * (1 - t) * std::cos(x1) + 10;
}

}  // namespace bachlab::host::testing
