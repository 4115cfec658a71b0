// Transfer learning on two cores:
//  - Forward/<model>: images per second through resnet50 and vgg16 at 224x224 (batch 8,
//    eval mode, no gradients): the cost of one feature pass.
//  - FrozenEpochs/<model>/400: 50 head epochs on 400 photos at 224x224 with the feature
//    cache (one backbone pass, then head-only epochs), against one measured epoch that
//    recomputes the features as training without the cache must; the recompute side's
//    50 epochs are that epoch times 50 (extrapolated, not run: it would take an hour).
//    Counters: cache_s (features once + 50 head epochs), features_s (the one backbone pass
//    and 49 cache hits), head_50_s (the 50 head-only epochs), recompute_epoch_s,
//    recompute_50_s (extrapolated) and speedup = recompute_50_s / cache_s.
// Weights: random (torchvision's initialisation, saved and loaded as a weights file), since
// timing does not depend on their values; pixels are random too.
#include "host/plugins/registry.h"
#include "host/train/feature_cache.h"

#include <bachlab/sdk/param_table.h>
#include <ATen/CPUGeneratorImpl.h>
#include <benchmark/benchmark.h>

#include <chrono>
#include <filesystem>
#include <fstream>

namespace {

namespace fs = std::filesystem;
using bachlab::host::PluginRegistry;
using bachlab::sdk::ModelSpec;
using bachlab::sdk::ParamTable;
using Clock = std::chrono::steady_clock;

constexpr int64_t kSize = 224;
constexpr int64_t kEpochs = 50;
constexpr int64_t kBatch = 32;

PluginRegistry& registry() {
  static PluginRegistry* r = [] {
    auto* registry = new PluginRegistry();
    for (const char* name : {"resnet50", "vgg16"})
      registry->load(fs::path(BACHLAB_BENCH_PLUGIN_DIR) / (std::string("bachlab-model-") + name + ".so"));
    return registry;
  }();
  return *r;
}

std::shared_ptr<bachlab::sdk::Network> from_scratch(const std::string& model) {
  ParamTable params("[model]");
  params.set("pretrained", false);
  params.set("mode", std::string("finetune"));
  return registry().create_model(model, ModelSpec{3, kSize, kSize, 4}, params);
}

// A weights file with the backbone of a from-scratch network, so frozen mode can load it.
std::string write_random_weights(const std::string& model) {
  const fs::path file = fs::temp_directory_path() / ("bachlab-bench-" + model + "-weights.pt");
  if (fs::exists(file)) return file.string();
  auto network = from_scratch(model);
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& p : network->named_parameters())
    if (p.key().rfind("head.", 0) != 0) dict.insert(p.key(), p.value().detach());
  for (const auto& b : network->named_buffers())
    if (b.key().rfind("head.", 0) != 0) dict.insert(b.key(), b.value());
  std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  fs::path temp = file;
  temp += ".tmp";
  std::ofstream(temp, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  fs::rename(temp, file);
  return file.string();
}

std::shared_ptr<bachlab::sdk::Network> frozen(const std::string& model) {
  ParamTable params("[model]");
  params.set("weights", write_random_weights(model));
  return registry().create_model(model, ModelSpec{3, kSize, kSize, 4}, params);
}

torch::Tensor random_images(int64_t n) {
  torch::Generator generator = at::make_generator<at::CPUGeneratorImpl>(1);
  return torch::randint(0, 256, {n, 3, kSize, kSize}, generator, torch::kUInt8);
}

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

void Forward(benchmark::State& state, const std::string& model) {
  torch::set_num_threads(2);
  auto network = from_scratch(model);
  network->eval();
  torch::NoGradGuard no_grad;
  torch::Tensor x = random_images(8).to(torch::kFloat32) / 255;
  for (auto _ : state) benchmark::DoNotOptimize(network->forward(x));
  state.SetItemsProcessed(state.iterations() * x.size(0));
}

// One training epoch of the head: on cached features, or through forward() (which runs
// the frozen backbone on every batch, as training without the cache does).
void head_epoch(bachlab::sdk::Network& network, torch::optim::Optimizer& optimizer, const torch::Tensor& inputs,
                const torch::Tensor& labels, bool cached, torch::Generator& generator) {
  network.train();
  const int64_t n = labels.size(0);
  torch::Tensor order = torch::randperm(n, generator, torch::kLong);
  for (int64_t start = 0; start < n; start += kBatch) {
    torch::Tensor index = order.slice(0, start, std::min(n, start + kBatch));
    torch::Tensor x = inputs.index_select(0, index);
    torch::Tensor logits =
        cached ? network.frozen_features()->head(x) : network.forward(x.to(torch::kFloat32).div_(255));
    torch::Tensor loss = torch::nn::functional::cross_entropy(logits, labels.index_select(0, index));
    torch::Tensor extra = network.regularization();
    if (extra.defined()) loss = loss + extra;
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
  }
}

void FrozenEpochs(benchmark::State& state, const std::string& model) {
  torch::set_num_threads(2);
  const int64_t n = state.range(0);
  const torch::Tensor images = random_images(n);
  const torch::Tensor labels = torch::arange(n, torch::kLong) % 4;
  for (auto _ : state) {
    auto network = frozen(model);
    std::vector<torch::Tensor> head;
    for (const auto& g : network->parameter_groups())
      if (g.trainable) head.insert(head.end(), g.parameters.begin(), g.parameters.end());
    torch::optim::Adam optimizer(head, torch::optim::AdamOptions(1e-3));
    torch::Generator generator = at::make_generator<at::CPUGeneratorImpl>(2);

    bachlab::host::FeatureCache cache;  // memory only: the first run of an experiment
    bachlab::host::FeatureInputs inputs;
    const auto start = Clock::now();
    double feature_seconds = 0;
    for (int64_t epoch = 1; epoch <= kEpochs; ++epoch) {
      const auto features_start = Clock::now();
      torch::Tensor features = cache.training_features(*network, images, inputs, epoch);
      feature_seconds += seconds_since(features_start);
      head_epoch(*network, optimizer, features, labels, true, generator);
    }
    const double cached_seconds = seconds_since(start);

    const auto recompute_start = Clock::now();
    head_epoch(*network, optimizer, images, labels, false, generator);
    const double recompute_epoch = seconds_since(recompute_start);

    state.counters["cache_s"] = cached_seconds;
    state.counters["features_s"] = feature_seconds;
    state.counters["head_50_s"] = cached_seconds - feature_seconds;
    state.counters["cache_hits"] = static_cast<double>(cache.stats().memory_hits);
    state.counters["recompute_epoch_s"] = recompute_epoch;
    state.counters["recompute_50_s"] = recompute_epoch * kEpochs;
    state.counters["speedup"] = recompute_epoch * kEpochs / cached_seconds;
  }
}

BENCHMARK_CAPTURE(Forward, resnet50, std::string("resnet50"))->Unit(benchmark::kMillisecond)->MinTime(5.0);
BENCHMARK_CAPTURE(Forward, vgg16, std::string("vgg16"))->Unit(benchmark::kMillisecond)->MinTime(5.0);
BENCHMARK_CAPTURE(FrozenEpochs, resnet50, std::string("resnet50"))->Arg(400)->Iterations(1)->Unit(benchmark::kSecond);
BENCHMARK_CAPTURE(FrozenEpochs, vgg16, std::string("vgg16"))->Arg(400)->Iterations(1)->Unit(benchmark::kSecond);

}  // namespace

BENCHMARK_MAIN();
