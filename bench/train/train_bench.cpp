// Training cost. Two questions:
//  1. What the trainer adds over a bare LibTorch loop on the same tensors and model
//     (target: at most 5%). BM_BareLoop is the loop anyone would write; BM_TrainerEpoch is
//     Trainer::train_epoch (plus its per-batch metrics bookkeeping); BM_TrainerFit adds
//     what fit() does per epoch on top (schedule, early-stopping state, checkpoint write).
//  2. Training throughput in images/s of each model plugin at the study configs' size.
//  3. The patch recipe (configs/bach_best.toml): patch_resnet trained on 128 px patches
//     sampled from half-scale BACH-size photos (1024x768), and photo-level prediction of
//     such a photo by its grid of 48 patches under each TTA setting. Its config's time
//     budget is computed from these.
// Threads are the machine's cores for every case, as a run's default; times are wall-clock
// (UseRealTime), since training runs on several threads.
#include "bench/bench_registry.h"
#include "host/eval/photo_prediction.h"
#include "host/train/patch_sampler.h"
#include "host/train/trainer.h"

#include <bachlab/sdk/param_table.h>
#include <benchmark/benchmark.h>

#include <ATen/CPUGeneratorImpl.h>

#include <filesystem>

namespace {

using namespace bachlab;
namespace fs = std::filesystem;

using bench::registry;

host::TrainerParts make_parts(const std::string& model, int64_t size) {
  torch::manual_seed(1);
  sdk::ParamTable model_params("[model]");
  host::TrainerParts parts;
  parts.model = registry().create_model(model, sdk::ModelSpec{3, size, size, 4}, model_params);
  sdk::ParamTable optimizer_params("[optimizer]");
  parts.optimizer = registry().create_optimizer("adam", {{"all", parts.model->parameters()}}, optimizer_params);
  return parts;
}

host::TensorSplit make_data(int64_t n, int64_t size) {
  torch::Generator g = at::make_generator<at::CPUGeneratorImpl>(3);
  return {torch::randint(0, 256, {n, 3, size, size}, g, torch::kUInt8), torch::randint(0, 4, {n}, g, torch::kLong)};
}

constexpr int64_t kImages = 128;
constexpr int64_t kOverheadSize = 64;
constexpr int64_t kBatch = 32;

host::TrainSettings settings() {
  host::TrainSettings s;
  s.epochs = 1000000;
  s.batch_size = kBatch;
  s.threads = 0;
  return s;
}

// What one would write without the framework: the same shuffling, batches, uint8 -> float,
// loss, backward and step, and nothing else.
void BM_BareLoop(benchmark::State& state) {
  torch::set_num_threads(static_cast<int>(host::effective_threads(0)));
  auto parts = make_parts("model4a", kOverheadSize);
  auto data = make_data(kImages, kOverheadSize);
  torch::Generator generator = at::make_generator<at::CPUGeneratorImpl>(5);
  auto& model = *parts.model;
  auto& optimizer = *parts.optimizer;
  model.train();
  for (auto _ : state) {
    torch::Tensor order = torch::randperm(kImages, generator, torch::kLong);
    for (int64_t start = 0; start < kImages; start += kBatch) {
      torch::Tensor index = order.slice(0, start, std::min(kImages, start + kBatch));
      torch::Tensor x = data.images.index_select(0, index).to(torch::kFloat32).div_(255.0);
      torch::Tensor y = data.labels.index_select(0, index);
      torch::Tensor loss = torch::nn::functional::cross_entropy(model.forward(x), y);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      benchmark::DoNotOptimize(loss.item<double>());
    }
  }
  state.SetItemsProcessed(state.iterations() * kImages);
}
BENCHMARK(BM_BareLoop)->Unit(benchmark::kMillisecond)->MinTime(3.0)->UseRealTime();

void BM_TrainerEpoch(benchmark::State& state) {
  host::Trainer trainer(make_parts("model4a", kOverheadSize), settings(), 5);
  torch::set_num_threads(static_cast<int>(host::effective_threads(0)));
  auto data = make_data(kImages, kOverheadSize);
  int64_t epoch = 0;
  for (auto _ : state) benchmark::DoNotOptimize(trainer.train_epoch(data, ++epoch).loss);
  state.SetItemsProcessed(state.iterations() * kImages);
}
BENCHMARK(BM_TrainerEpoch)->Unit(benchmark::kMillisecond)->MinTime(3.0)->UseRealTime();

// fit() for three epochs: what a real run adds per epoch on top of train_epoch (the
// learning-rate schedule, early-stopping bookkeeping, the atomic last.pt and best.pt
// writes), without a validation split since the bare loop has none either.
void BM_TrainerFit(benchmark::State& state) {
  constexpr int64_t kEpochs = 3;
  const fs::path dir = fs::temp_directory_path() / "bachlab_train_bench";
  auto data = make_data(kImages, kOverheadSize);
  host::TrainSettings s = settings();
  s.epochs = kEpochs;
  s.early_stopping.monitor = "train_loss";
  for (auto _ : state) {
    state.PauseTiming();
    fs::remove_all(dir);
    host::Trainer trainer(make_parts("model4a", kOverheadSize), s, 5);
    trainer.set_checkpoint_dir(dir);
    state.ResumeTiming();
    benchmark::DoNotOptimize(trainer.fit(data, {}).history.size());
  }
  state.SetItemsProcessed(state.iterations() * kImages * kEpochs);
  fs::remove_all(dir);
}
BENCHMARK(BM_TrainerFit)->Unit(benchmark::kMillisecond)->MinTime(3.0)->UseRealTime();

// Images per second of training (forward, backward, Adam step) per model plugin at the
// study configs' 128x128.
void BM_ModelThroughput(benchmark::State& state, const std::string& model) {
  constexpr int64_t kSize = 128;
  torch::set_num_threads(static_cast<int>(host::effective_threads(0)));
  host::Trainer trainer(make_parts(model, kSize), settings(), 5);
  torch::set_num_threads(static_cast<int>(host::effective_threads(0)));
  auto data = make_data(64, kSize);
  int64_t epoch = 0;
  for (auto _ : state) benchmark::DoNotOptimize(trainer.train_epoch(data, ++epoch).loss);
  state.SetItemsProcessed(state.iterations() * 64);
}
BENCHMARK_CAPTURE(BM_ModelThroughput, baseline, std::string("baseline"))->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_ModelThroughput, model2, std::string("model2"))->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_ModelThroughput, model3a, std::string("model3a"))->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_ModelThroughput, model3b, std::string("model3b"))->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_ModelThroughput, model4a, std::string("model4a"))->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_ModelThroughput, model4b, std::string("model4b"))->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_CAPTURE(BM_ModelThroughput, patch_resnet, std::string("patch_resnet"))
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

constexpr int64_t kPatch = 128;
constexpr int64_t kPhotoHeight = 768;
constexpr int64_t kPhotoWidth = 1024;

// Patches per second of Trainer::train_epoch over a PatchSampler, batch 32 as in
// bach_best.toml: sampling, cropping, uint8 -> float, forward, backward, Adam. The
// augmentations bach_best.toml adds are left out here (bench_plugins --kind augmentation
// measures each).
void BM_PatchTrainingEpoch(benchmark::State& state) {
  torch::set_num_threads(static_cast<int>(host::effective_threads(0)));
  host::Trainer trainer(make_parts("patch_resnet", kPatch), settings(), 5);
  torch::set_num_threads(static_cast<int>(host::effective_threads(0)));
  torch::Generator g = at::make_generator<at::CPUGeneratorImpl>(3);
  const host::TensorSplit photos{torch::randint(0, 256, {4, 3, kPhotoHeight, kPhotoWidth}, g, torch::kUInt8),
                                 torch::arange(4, torch::kLong)};
  host::PatchSettings patches;
  patches.size = kPatch;
  patches.per_image = 16;  // 64 patches per epoch, two batches of 32
  host::PatchSampler sampler(photos, patches);
  int64_t epoch = 0;
  for (auto _ : state) benchmark::DoNotOptimize(trainer.train_epoch(sampler, ++epoch).loss);
  state.SetItemsProcessed(state.iterations() * 4 * patches.per_image);
}
BENCHMARK(BM_PatchTrainingEpoch)->Unit(benchmark::kMillisecond)->UseRealTime();

// Photos per second of photo-level prediction of one 1024x768 photo: 8 x 6 = 48 grid
// patches of 128 px, patch_resnet, aggregate mean; the argument is the TTA count.
void BM_PhotoPrediction(benchmark::State& state) {
  const host::Tta tta = state.range(0) == 1 ? host::Tta::none : state.range(0) == 4 ? host::Tta::flips : host::Tta::d4;
  torch::set_num_threads(static_cast<int>(host::effective_threads(0)));
  host::Trainer trainer(make_parts("patch_resnet", kPatch), settings(), 5);
  torch::set_num_threads(static_cast<int>(host::effective_threads(0)));
  torch::Generator g = at::make_generator<at::CPUGeneratorImpl>(3);
  const torch::Tensor photo = torch::randint(0, 256, {1, 3, kPhotoHeight, kPhotoWidth}, g, torch::kUInt8);
  host::PhotoPredictionSettings s;
  s.patch_size = kPatch;
  s.tta = tta;
  s.batch_size = 64;
  const host::PatchProbabilities model = [&trainer](const torch::Tensor& x) {
    return trainer.predict({x, {}}).probabilities;
  };
  for (auto _ : state) benchmark::DoNotOptimize(host::predict_photos(photo, {}, model, s).probabilities);
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(host::kTtas.name(tta));
}
BENCHMARK(BM_PhotoPrediction)->Arg(1)->Arg(4)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
