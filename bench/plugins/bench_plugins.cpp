// Benchmarks every plugin found at run time against the others of its kind:
//   model/<name>/forward and model/<name>/train_step   images/s at --size and --batch
//   augmentation/<name>                                 images/s on one batch
//   optimizer/<name>/step                               one step over a fixed 1M-parameter set
//   tuner/<name>/ask/history:N                          one proposal after N finished trials
//   data/...                                            the data path (bench/data), kind "data"
// Plugins come from the build's plugin folder plus BACHLAB_PLUGIN_PATH, as for `bachlab`.
// A model is benchmarked in the first form that builds without files from elsewhere: its
// defaults; else `pretrained = false` (the transfer backbones, randomly initialised: the
// same kernels, so the same speed); else `module = ` a small TorchScript module this program
// makes (the torchscript plugin). A plugin that builds in none is listed with its reason and
// skipped; no exception ends the program.
// Own flags (before Google Benchmark's): --size=S (default 64), --batch=B (default 16),
// --threads=T (default: all cores), --kind=K (only that kind, or "data").
#include "bench/data/data_benchmarks.h"
#include "host/data/parallel.h"
#include "host/plugins/registry.h"
#include "host/train/precision.h"

#include <bachlab/sdk/param_table.h>
#include <benchmark/benchmark.h>
#include <torch/script.h>

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>

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

std::vector<sdk::ParameterGroup> trainable_groups(sdk::Network& network) {
  std::vector<sdk::ParameterGroup> groups;
  for (auto& group : network.parameter_groups())
    if (group.trainable) groups.push_back(group);
  return groups;
}

// A small TorchScript feature extractor (a strided 3x3 convolution to 16 maps), saved once
// per process, for the torchscript plugin's `module` key; removed at exit.
std::string bench_torchscript_module() {
  static const std::string file = [] {
    const auto path = std::filesystem::temp_directory_path() /
                      ("bachlab_bench_features_" + std::to_string(::getpid()) + ".ts");
    torch::jit::Module module("BenchFeatures");
    torch::manual_seed(0);
    module.register_parameter("weight", torch::randn({16, 3, 3, 3}) * 0.1, false);
    module.define(R"(
def forward(self, x):
    return torch.relu(torch.conv2d(x, self.weight, None, [2, 2], [1, 1], [1, 1], 1))
)");
    module.save(path.string());
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove(std::filesystem::temp_directory_path() /
                                  ("bachlab_bench_features_" + std::to_string(::getpid()) + ".ts"),
                              ec);
    });
    return path.string();
  }();
  return file;
}

// The settings a model is benchmarked with (see the file comment) and what they mean.
struct ModelForm {
  sdk::ParamTable params;
  std::string label;  // shown in the benchmark's label column; "" for the defaults
};

// The first form of `name` that builds, or nullopt with `reason` set to why none did (the
// message of the defaults' failure, which names what the plugin needs).
std::optional<ModelForm> benchmarkable_form(const host::PluginRegistry& registry, const std::string& name,
                                            const BenchOptions& o, std::string& reason) {
  std::vector<ModelForm> forms;
  forms.push_back({sdk::ParamTable("[model]"), ""});
  // Without weights a backbone cannot stay frozen (it would be random features), so the
  // random-init form trains it too: mode = "finetune", the transfer plugins' own rule.
  forms.push_back({sdk::ParamTable("[model]"), "random init (pretrained = false, mode = finetune)"});
  forms.back().params.set("pretrained", false);
  forms.back().params.set("mode", std::string("finetune"));
  forms.push_back({sdk::ParamTable("[model]"), "a 3x3 conv TorchScript module made by the bench"});
  try {
    forms.back().params.set("module", bench_torchscript_module());
  } catch (const std::exception&) {
    forms.pop_back();  // cannot happen with a working LibTorch; the other forms still apply
  }
  for (auto& form : forms) {
    sdk::ParamTable params = form.params;
    try {
      registry.create_model(name, {3, o.size, o.size, 4}, params);
      return form;
    } catch (const std::exception& e) {
      if (reason.empty()) reason = e.what();
    }
  }
  return std::nullopt;
}

// Runs `body`, turning an exception into the benchmark's error (shown in its row) rather
// than the end of the program.
template <typename Body>
void guarded(benchmark::State& state, Body&& body) {
  try {
    body();
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

// Returns false (after saying why on stderr) if the model cannot be built in any form.
bool register_model(const host::PluginRegistry& registry, const std::string& name, const BenchOptions& o) {
  std::string reason;
  const std::optional<ModelForm> form = benchmarkable_form(registry, name, o, reason);
  if (!form) {
    std::cerr << "skipped model/" << name << ": it cannot be built for benchmarking: " << reason << "\n";
    return false;
  }
  const std::string prefix = "model/" + name + "/";
  // Each step in the four ways [train] precision and channels_last can compute it: fp32
  // (the plain names, as before these settings existed), channels-last, bf16 autocast, both.
  struct Format {
    const char* suffix;
    host::Precision precision;
    bool channels_last;
  };
  for (const Format f : {Format{"", host::Precision::fp32, false}, Format{"_channels_last", host::Precision::fp32, true},
                         Format{"_bf16", host::Precision::bf16, false},
                         Format{"_bf16_channels_last", host::Precision::bf16, true}}) {
    // The model in its form, mode and layout, built inside each benchmark (as it runs).
    auto make_network = [&registry, name, o, form, f](bool training) {
      sdk::ParamTable params = form->params;
      auto network = registry.create_model(name, {3, o.size, o.size, 4}, params);
      network->train(training);
      if (f.channels_last) host::to_channels_last(*network);
      return network;
    };
    benchmark::RegisterBenchmark((prefix + "forward" + f.suffix).c_str(), [make_network, o, form, f](benchmark::State& state) {
      guarded(state, [&] {
        auto network = make_network(/*training=*/false);
        torch::NoGradGuard no_grad;
        auto images = host::model_layout(torch::rand({o.batch, 3, o.size, o.size}), f.channels_last);
        for (auto _ : state) {
          host::AutocastScope autocast(f.precision, torch::kCPU);
          benchmark::DoNotOptimize(network->forward(images));
        }
        state.SetItemsProcessed(state.iterations() * o.batch);
        state.SetLabel(form->label);
      });
    })->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark((prefix + "train_step" + f.suffix).c_str(), [&registry, make_network, o, form, f](benchmark::State& state) {
      guarded(state, [&] {
        auto network = make_network(/*training=*/true);
        sdk::ParamTable optimizer_params("[optimizer]");
        auto optimizer = registry.create_optimizer("adam", trainable_groups(*network), optimizer_params);
        auto images = host::model_layout(torch::rand({o.batch, 3, o.size, o.size}), f.channels_last);
        auto labels = torch::randint(0, 4, {o.batch}, torch::kLong);
        for (auto _ : state) {
          optimizer->zero_grad();
          torch::Tensor loss;
          {
            // As the trainer's MixedPrecision callback: autocast for the forward pass and the loss only.
            host::AutocastScope autocast(f.precision, torch::kCPU);
            loss = torch::nn::functional::cross_entropy(network->forward(images).to(torch::kFloat32), labels);
          }
          loss.backward();
          optimizer->step();
        }
        state.SetItemsProcessed(state.iterations() * o.batch);
        state.SetLabel(form->label);
      });
    })->Unit(benchmark::kMillisecond)->UseRealTime();
  }
  return true;
}

void register_augmentation(const host::PluginRegistry& registry, const std::string& name, const BenchOptions& o) {
  benchmark::RegisterBenchmark(("augmentation/" + name).c_str(), [&registry, name, o](benchmark::State& state) {
    guarded(state, [&] {
      sdk::ParamTable params("[[augment]]");
      auto augmentation = registry.create_augmentation(name, params);
      auto images = torch::rand({o.batch, 3, o.size, o.size});
      auto generator = at::detail::createCPUGenerator(7);
      for (auto _ : state) benchmark::DoNotOptimize(augmentation->apply(images, generator));
      state.SetItemsProcessed(state.iterations() * o.batch);
    });
  })->Unit(benchmark::kMicrosecond)->UseRealTime();
}

void register_optimizer(const host::PluginRegistry& registry, const std::string& name) {
  benchmark::RegisterBenchmark(("optimizer/" + name + "/step").c_str(), [&registry, name](benchmark::State& state) {
    guarded(state, [&] {
      torch::manual_seed(0);
      std::vector<torch::Tensor> parameters;
      for (int i = 0; i < 10; ++i) parameters.push_back(torch::randn({100000}, torch::requires_grad()));
      sdk::ParamTable params("[optimizer]");
      auto optimizer = registry.create_optimizer(name, {{"all", parameters}}, params);
      for (auto& p : parameters) p.mutable_grad() = torch::randn_like(p);
      for (auto _ : state) optimizer->step();
      state.SetItemsProcessed(state.iterations() * 1000000);
    });
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
        [&registry, name, observed](benchmark::State& state) { guarded(state, [&] {
          sdk::StudySettings settings;
          settings.max_trials = observed + 1000000;  // never "done" while measuring
          settings.epochs = 10;
          settings.seed = 1;
          sdk::ParamTable params("[tune]");
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
        }); })
        ->Unit(benchmark::kMillisecond)->UseRealTime();
  }
}

// Google Benchmark's console table with our own header: what was measured on what, and
// what each column means. (Its own header warns "Library was built as DEBUG" because
// Debian builds libbenchmark without NDEBUG; that concerns the library's bookkeeping, not
// the timed code, which is this build's.)
// After each benchmark it says on stderr how many of the `total` are done and, at their
// mean time so far, the time left (issue #21 item 11): one line each, on a terminal or in
// a log. `total` 0: no such lines.
class Reporter : public benchmark::ConsoleReporter {
 public:
  Reporter(OutputOptions options, std::string setting, size_t total)
      : ConsoleReporter(options), setting_(std::move(setting)), total_(total) {}

  void ReportRuns(const std::vector<Run>& report) override {
    ConsoleReporter::ReportRuns(report);
    // With repetitions a benchmark may come in two reports (its runs, then their
    // aggregates), both after it ran.
    if (total_ == 0 || report.empty() || report.front().run_name.str() == last_) return;
    last_ = report.front().run_name.str();
    ++done_;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    GetOutputStream() << std::flush;
    GetErrorStream() << host::progress_line("benchmarks", done_, total_, seconds, done_ >= total_) << std::endl;
  }

  bool ReportContext(const Context& context) override {
    name_field_width_ = context.name_field_width;
    printed_header_ = false;
    prev_counters_.clear();
    const auto& cpu = context.cpu_info;
    GetErrorStream() << context.sys_info.name << ": " << cpu.num_cpus << (cpu.num_cpus == 1 ? " CPU" : " CPUs")
                     << " at " << static_cast<int64_t>(cpu.cycles_per_second / 1e6) << " MHz; " << setting_ << "\n"
                     << "Time: wall-clock time per iteration (a batch through a model or augmentation, one "
                        "optimizer step, one tuner proposal). CPU: this process's CPU time per iteration, summed "
                        "over its threads. Iterations: how many were timed. items_per_second: images (optimizers: "
                        "parameters) per second. The last column says which form of a model was built.\n";
    start_ = std::chrono::steady_clock::now();
    return true;
  }

 private:
  std::string setting_;
  size_t total_;
  size_t done_ = 0;
  std::string last_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// Sets Google Benchmark's --benchmark_list_tests, which has no other setter.
void set_list_tests(const char* program, bool on) {
  std::string name = program, flag = std::string("--benchmark_list_tests=") + (on ? "true" : "false");
  char* argv[] = {name.data(), flag.data(), nullptr};
  int argc = 2;
  benchmark::Initialize(&argc, argv);
}

// How many benchmarks the filter selects, as Google Benchmark lists them (one per Arg),
// so the count is what it then runs; 0 if the caller asked for the list itself.
size_t count_selected_benchmarks(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], "--benchmark_list_tests", 22) == 0) return 0;
  std::ostringstream names;
  benchmark::ConsoleReporter lister;
  lister.SetOutputStream(&names);
  lister.SetErrorStream(&names);
  set_list_tests(argv[0], true);
  const size_t count = benchmark::RunSpecifiedBenchmarks(&lister);
  set_list_tests(argv[0], false);
  return count;
}

}  // namespace

int main(int argc, char** argv) try {
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
  int skipped = 0;
  for (const auto& plugin : registry.plugins()) {
    if (!options.kind.empty() && plugin.kind != options.kind) continue;
    if (plugin.kind == "model" && !register_model(registry, plugin.name, options)) ++skipped;
    if (plugin.kind == "augmentation") register_augmentation(registry, plugin.name, options);
    if (plugin.kind == "optimizer") register_optimizer(registry, plugin.name);
    if (plugin.kind == "tuner") register_tuner(registry, plugin.name);
  }
  const int threads = torch::get_num_threads();
  Reporter reporter(isatty(STDOUT_FILENO) ? benchmark::ConsoleReporter::OO_ColorTabular
                                          : benchmark::ConsoleReporter::OO_Tabular,
                    "input " + std::to_string(options.size) + "x" + std::to_string(options.size) + ", batch " +
                        std::to_string(options.batch) + ", " + std::to_string(threads) +
                        (threads == 1 ? " LibTorch thread" : " LibTorch threads"),
                    count_selected_benchmarks(argc, argv));
  const size_t ran = benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  if (skipped > 0) std::cerr << skipped << (skipped == 1 ? " model plugin was" : " model plugins were")
                             << " skipped (see above)\n";
  if (ran == 0) {
    std::cerr << "no benchmark matched" << (options.kind.empty() ? "" : " of kind " + options.kind)
              << "; `bachlab plugins` lists the plugins, and --filter is a regular expression over names such as "
                 "model/model4a/forward\n";
    return 1;
  }
  return 0;
} catch (const std::exception& e) {
  std::cerr << "bench_plugins: " << e.what() << "\n";
  return 1;
}
