// Ask latency of each tuner plugin after 10, 100 and 500 observed trials, on the study's
// Model 4A space (two ints with steps, four choices, one log float, one three-way choice:
// 15 encoded columns for the Gaussian process). The GP must stay under 100 ms per
// proposal at 100 trials on two cores.
//   build/<dir>/bench/bench_tuners --benchmark_min_time=0.5
#include "bench/bench_registry.h"

#include <bachlab/sdk/param_table.h>
#include <bachlab/sdk/tuner.h>

#include <benchmark/benchmark.h>

#include <cmath>
#include <memory>

namespace {

using namespace bachlab;

using bench::registry;

sdk::SearchSpace model4a_space() {
  auto choice = [](std::string name, std::vector<sdk::Scalar> values) {
    sdk::Dimension d;
    d.name = std::move(name);
    d.type = sdk::Dimension::Type::Choice;
    d.choices = std::move(values);
    return d;
  };
  sdk::Dimension filters;
  filters.name = "model.filters";
  filters.type = sdk::Dimension::Type::Int;
  filters.int_min = 32, filters.int_max = 256, filters.int_step = 32;
  sdk::Dimension hidden = filters;
  hidden.name = "model.hidden_units";
  hidden.int_min = 64, hidden.int_max = 512, hidden.int_step = 64;
  sdk::Dimension lr;
  lr.name = "optimizer.lr";
  lr.type = sdk::Dimension::Type::Float;
  lr.float_min = 1e-4, lr.float_max = 1e-2, lr.log = true;
  sdk::SearchSpace space;
  space.dimensions = {filters,
                      choice("model.kernel_size", {int64_t{3}, int64_t{5}, int64_t{11}}),
                      choice("model.strides", {int64_t{1}, int64_t{2}}),
                      choice("model.padding", {std::string("same"), std::string("valid")}),
                      hidden,
                      choice("model.activation", {std::string("relu"), std::string("sigmoid")}),
                      lr,
                      choice("optimizer.plugin", {std::string("adam"), std::string("rmsprop"), std::string("sgd")})};
  return space;
}

// A smooth made-up objective of the encoded values, so the GP has structure to fit.
double score(const sdk::Assignment& a) {
  const double lr = std::get<double>(a.at("optimizer.lr"));
  const double filters = static_cast<double>(std::get<int64_t>(a.at("model.filters")));
  return -std::pow(std::log10(lr) + 3, 2) - std::pow((filters - 128) / 128, 2) +
         (std::get<std::string>(a.at("model.activation")) == "relu" ? 0.3 : 0.0);
}

// A history of n complete trials as the tuner itself would have proposed them (random
// search stands in for the warm-up, so every tuner sees the same history).
std::vector<sdk::TrialRecord> history_of(int64_t n) {
  sdk::StudySettings settings;
  settings.max_trials = n + 10;
  settings.seed = 1;
  sdk::ParamTable params("[tune.options]");
  auto random = registry().create_tuner("random", model4a_space(), settings, params);
  std::vector<sdk::TrialRecord> history;
  for (int64_t i = 0; i < n; ++i) {
    auto p = random->ask(history);
    sdk::TrialRecord t;
    t.id = i;
    t.params = p.params;
    t.epochs = p.epochs;
    t.state = sdk::TrialRecord::State::Complete;
    t.score = score(p.params);
    history.push_back(t);
  }
  return history;
}

void ask_latency(benchmark::State& state, const std::string& name) {
  const int64_t n = state.range(0);
  auto history = history_of(n);
  sdk::StudySettings settings;
  settings.max_trials = n + 1000;
  settings.epochs = 50;
  settings.seed = 7;
  sdk::ParamTable params("[tune.options]");
  if (name == "hyperband") params.set("max_epochs", int64_t{81});
  // The Gaussian process itself is measured, not the random warm-up.
  if (name == "bayesian") params.set("initial_points", int64_t{2});
  auto tuner = registry().create_tuner(name, model4a_space(), settings, params);
  for (auto _ : state) {
    auto p = tuner->ask(history);
    benchmark::DoNotOptimize(p);
  }
  state.SetLabel(std::to_string(n) + " observed trials");
}

}  // namespace

BENCHMARK_CAPTURE(ask_latency, random, std::string("random"))->Arg(10)->Arg(100)->Arg(500)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(ask_latency, bayesian, std::string("bayesian"))->Arg(10)->Arg(100)->Arg(500)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(ask_latency, hyperband, std::string("hyperband"))->Arg(10)->Arg(100)->Arg(500)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
