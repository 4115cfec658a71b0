// Benchmarks every plugin found at run time against the others of its kind:
//   model/<name>/forward and model/<name>/train_step   images/s at --size and --batch
//   augmentation/<name>                                 images/s on one batch
//   optimizer/<name>/step                               one step over a fixed 1M-parameter set
//   tuner/<name>/ask/history:N                          one proposal after N finished trials
//   data/...                                            the data path (bench/data), kind "data"
// Plugins come from the build's plugin folder plus BACHLAB_PLUGIN_PATH, as for `bachlab`.
// Own flags (before Google Benchmark's): --size=S (default 64), --batch=B (default 16),
// --threads=T (default: all cores), --kind=K (only that kind, or "data").
#include "bench/data/data_benchmarks.h"
#include "host/plugins/registry.h"

#include <benchmark/benchmark.h>

#include <cmath>
#include <cstring>
#include <thread>
#include <iostream>

namespace {

using namespace bachlab;

struct BenchOptions {
  int64_t size = 64;
  int64_t batch = 16;
  int64_t threads = 0;
  std::string kind;
};

// Reads and removes our own flags so Google Benchmark sees only its own.
BenchOptions take_options(int& argc, char** argv) {
  BenchOptions options;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value_of = [&](const char* flag) -> const char* {
      size_t n = std::strlen(flag);
      return arg.compare(0, n, flag) == 0 ? argv[i] + n : nullptr;
    };
    if (const char* v = value_of("--size=")) {
      options.size = std::stoll(v);
    } else if (const char* v = value_of("--batch=")) {
      options.batch = std::stoll(v);
    } else if (const char* v = value_of("--threads=")) {
      options.threads = std::stoll(v);
    } else if (const char* v = value_of("--kind=")) {
      options.kind = v;
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  return options;
}

std::vector<std::vector<torch::Tensor>> trainable_groups(sdk::Network& network) {
  std::vector<std::vector<torch::Tensor>> groups;
  for (auto& group : network.parameter_groups())
    if (group.trainable) groups.push_back(group.parameters);
  return groups;
}

void register_model(const host::PluginRegistry& registry, const std::string& name, const BenchOptions& o) {
  const std::string prefix = "model/" + name + "/";
  benchmark::RegisterBenchmark((prefix + "forward").c_str(), [&registry, name, o](benchmark::State& state) {
    sdk::Params params("[model]");
    auto network = registry.create_model(name, {3, o.size, o.size, 4}, params);
    network->eval();
    torch::NoGradGuard no_grad;
    auto images = torch::rand({o.batch, 3, o.size, o.size});
    for (auto _ : state) benchmark::DoNotOptimize(network->forward(images));
    state.SetItemsProcessed(state.iterations() * o.batch);
  })->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark((prefix + "train_step").c_str(), [&registry, name, o](benchmark::State& state) {
    sdk::Params model_params("[model]");
    auto network = registry.create_model(name, {3, o.size, o.size, 4}, model_params);
    network->train();
    sdk::Params optimizer_params("[optimizer]");
    auto optimizer = registry.create_optimizer("adam", trainable_groups(*network), optimizer_params);
    auto images = torch::rand({o.batch, 3, o.size, o.size});
    auto labels = torch::randint(0, 4, {o.batch}, torch::kLong);
    for (auto _ : state) {
      optimizer->zero_grad();
      auto loss = torch::nn::functional::cross_entropy(network->forward(images), labels);
      loss.backward();
      optimizer->step();
    }
    state.SetItemsProcessed(state.iterations() * o.batch);
  })->Unit(benchmark::kMillisecond)->UseRealTime();
}

void register_augmentation(const host::PluginRegistry& registry, const std::string& name, const BenchOptions& o) {
  benchmark::RegisterBenchmark(("augmentation/" + name).c_str(), [&registry, name, o](benchmark::State& state) {
    sdk::Params params("[[augment]]");
    auto augmentation = registry.create_augmentation(name, params);
    auto images = torch::rand({o.batch, 3, o.size, o.size});
    auto generator = at::detail::createCPUGenerator(7);
    for (auto _ : state) benchmark::DoNotOptimize(augmentation->apply(images, generator));
    state.SetItemsProcessed(state.iterations() * o.batch);
  })->Unit(benchmark::kMicrosecond)->UseRealTime();
}

void register_optimizer(const host::PluginRegistry& registry, const std::string& name) {
  benchmark::RegisterBenchmark(("optimizer/" + name + "/step").c_str(), [&registry, name](benchmark::State& state) {
    torch::manual_seed(0);
    std::vector<torch::Tensor> parameters;
    for (int i = 0; i < 10; ++i) parameters.push_back(torch::randn({100000}, torch::requires_grad()));
    sdk::Params params("[optimizer]");
    auto optimizer = registry.create_optimizer(name, {parameters}, params);
    for (auto& p : parameters) p.mutable_grad() = torch::randn_like(p);
    for (auto _ : state) optimizer->step();
    state.SetItemsProcessed(state.iterations() * 1000000);
  })->Unit(benchmark::kMicrosecond)->UseRealTime();
}

// A mixed space like the study's: ints with steps, a log-scaled float, choices, a bool.
sdk::SearchSpace study_like_space() {
  using Type = sdk::Dimension::Type;
  sdk::SearchSpace space;
  auto add = [&](sdk::Dimension d) { space.dimensions.push_back(std::move(d)); };
  sdk::Dimension filters{"model.filters", Type::Int};
  filters.int_min = 32, filters.int_max = 256, filters.int_step = 32;
  add(filters);
  sdk::Dimension units{"model.hidden_units", Type::Int};
  units.int_min = 64, units.int_max = 512, units.int_step = 64;
  add(units);
  sdk::Dimension kernel{"model.kernel_size", Type::Choice};
  kernel.choices = {int64_t{3}, int64_t{5}, int64_t{11}};
  add(kernel);
  sdk::Dimension activation{"model.activation", Type::Choice};
  activation.choices = {std::string("relu"), std::string("sigmoid")};
  add(activation);
  sdk::Dimension lr{"optimizer.lr", Type::Float};
  lr.float_min = 1e-4, lr.float_max = 1e-2, lr.log = true;
  add(lr);
  sdk::Dimension same{"model.same_padding", Type::Bool};
  add(same);
  return space;
}

// A smooth made-up objective so that history scores carry signal for model-based tuners.
double made_up_score(const sdk::Assignment& params) {
  double score = 0;
  for (const auto& [name, value] : params) {
    if (auto i = std::get_if<int64_t>(&value)) score -= std::pow(std::log2(static_cast<double>(*i)) - 6.0, 2);
    if (auto d = std::get_if<double>(&value)) score -= std::pow(std::log10(*d) + 3.0, 2);
    if (auto b = std::get_if<bool>(&value)) score += *b ? 0.1 : 0.0;
  }
  return score;
}

void register_tuner(const host::PluginRegistry& registry, const std::string& name) {
  for (int64_t observed : {10, 100, 500}) {
    benchmark::RegisterBenchmark(
        ("tuner/" + name + "/ask/history:" + std::to_string(observed)).c_str(),
        [&registry, name, observed](benchmark::State& state) {
          sdk::StudySettings settings;
          settings.max_trials = observed + 1000000;  // never "done" while measuring
          settings.epochs = 10;
          settings.seed = 1;
          sdk::Params params("[tune]");
          auto tuner = registry.create_tuner(name, study_like_space(), settings, params);
          // The history is what this tuner itself proposed, completed with made-up scores,
          // so budget-scheduling tuners (Hyperband) see a history they can continue.
          std::vector<sdk::TrialRecord> history;
          while (static_cast<int64_t>(history.size()) < observed) {
            sdk::Proposal proposal = tuner->ask(history);
            if (proposal.kind != sdk::Proposal::Kind::Run) break;
            sdk::TrialRecord trial;
            trial.id = static_cast<int64_t>(history.size());
            trial.state = sdk::TrialRecord::State::Complete;
            trial.params = proposal.params;
            trial.epochs = proposal.epochs;
            trial.resume_from = proposal.resume_from;
            trial.score = made_up_score(proposal.params) + 0.01 * static_cast<double>(proposal.epochs);
            history.push_back(std::move(trial));
          }
          if (static_cast<int64_t>(history.size()) < observed) {
            state.SkipWithError("the tuner stopped proposing before the history was built");
            return;
          }
          for (auto _ : state) benchmark::DoNotOptimize(tuner->ask(history));
        })
        ->Unit(benchmark::kMillisecond)->UseRealTime();
  }
}

}  // namespace

int main(int argc, char** argv) {
  BenchOptions options = take_options(argc, argv);
  // OpenMP may start with one thread here (omp_get_max_threads() is 1 on this machine),
  // so the default is set explicitly: every core, as the trainer does.
  torch::set_num_threads(static_cast<int>(options.threads > 0 ? options.threads
                                                              : std::max(1u, std::thread::hardware_concurrency())));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  static host::PluginRegistry registry;
  // The bench program lives in <build>/bench, so it names the build's plugin folder itself.
  registry.scan(host::plugin_search_path({BACHLAB_BENCH_PLUGIN_DIR}));
  for (const auto& rejection : registry.rejections()) std::cerr << "rejected: " << rejection.reason << "\n";
  benchmark::AddCustomContext("input", std::to_string(options.size) + "x" + std::to_string(options.size));
  benchmark::AddCustomContext("batch", std::to_string(options.batch));
  benchmark::AddCustomContext("torch_threads", std::to_string(torch::get_num_threads()));

  if (options.kind.empty() || options.kind == "data") register_data_benchmarks();
  for (const auto& plugin : registry.plugins()) {
    if (!options.kind.empty() && plugin.kind != options.kind) continue;
    if (plugin.kind == "model") register_model(registry, plugin.name, options);
    if (plugin.kind == "augmentation") register_augmentation(registry, plugin.name, options);
    if (plugin.kind == "optimizer") register_optimizer(registry, plugin.name);
    if (plugin.kind == "tuner") register_tuner(registry, plugin.name);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
