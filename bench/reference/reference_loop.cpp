// bachlab's half of the side-by-side with a plain PyTorch training loop (reference_loop.py).
//
// Makes the tensors both sides train on (seeded uint8 photos and labels) and a model
// plugin with its initial weights, writes them to --out as raw little-endian arrays with a
// manifest, then trains with bachlab's Trainer::train_epoch - the per-epoch work of every
// `bachlab run`, running metrics included - and records images per second. The Python
// side loads the same files, proves it holds the same network by reproducing the
// manifest's loss on the first batch, and trains with the same batch size, optimizer and
// thread count. With --loop bare this program runs the Python side's loop in LibTorch
// instead, which separates the trainer's own cost (metrics, hooks) from LibTorch's.
// compare.sh runs all three and prints the ratios.
#include "host/plugins/registry.h"
#include "host/train/trainer.h"
#include "host/util/atomic_file.h"

#include <bachlab/sdk/param_table.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <filesystem>
#include <iostream>

namespace {

using namespace bachlab;
namespace fs = std::filesystem;

struct Options {
  fs::path out;
  std::string model = "model4a";
  int64_t images = 256;
  int64_t size = 96;
  int64_t batch = 32;
  int64_t epochs = 5;
  int64_t threads = 0;
  double lr = 1e-3;
  /// "trainer": bachlab's Trainer::train_epoch; "bare": the loop reference_loop.py runs,
  /// written with LibTorch, to tell the trainer's own cost from LibTorch's.
  std::string loop = "trainer";
};

// The bytes of a contiguous CPU tensor, as the Python side reads them with numpy.
std::string raw_bytes(const torch::Tensor& tensor) {
  const torch::Tensor t = tensor.contiguous().cpu();
  return std::string(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
}

int run(const Options& o) {
  const int64_t threads = host::effective_threads(o.threads);
  torch::set_num_threads(static_cast<int>(threads));
  fs::create_directories(o.out);

  host::PluginRegistry registry;
  registry.scan({BACHLAB_BENCH_PLUGIN_DIR});
  torch::manual_seed(1);
  sdk::ParamTable model_params("[model]");
  host::TrainerParts parts;
  parts.model = registry.create_model(o.model, sdk::ModelSpec{3, o.size, o.size, 4}, model_params);
  sdk::ParamTable optimizer_params("[optimizer]");
  optimizer_params.set("lr", o.lr);
  parts.optimizer = registry.create_optimizer("adam", {{"all", parts.model->parameters()}}, optimizer_params);

  torch::Generator g = at::make_generator<at::CPUGeneratorImpl>(3);
  host::TensorSplit data{torch::randint(0, 256, {o.images, 3, o.size, o.size}, g, torch::kUInt8),
                         torch::randint(0, 4, {o.images}, g, torch::kLong)};

  // The check value: the loss of the untrained network on the first batch, in evaluation
  // mode (no dropout), inputs scaled to [0,1] as the trainer does.
  nlohmann::json manifest;
  {
    torch::NoGradGuard no_grad;
    parts.model->eval();
    const int64_t n = std::min(o.batch, o.images);
    torch::Tensor x = data.images.slice(0, 0, n).to(torch::kFloat32).div_(255.0);
    manifest["first_batch_loss"] =
        torch::nn::functional::cross_entropy(parts.model->forward(x), data.labels.slice(0, 0, n)).item<double>();
    parts.model->train();
  }
  nlohmann::json parameters = nlohmann::json::array();
  std::string weights;
  for (const auto& p : parts.model->named_parameters()) {
    parameters.push_back({{"name", p.key()}, {"shape", p.value().sizes().vec()}});
    weights += raw_bytes(p.value().to(torch::kFloat32));
  }
  host::write_file_atomic(o.out / "images.u8", raw_bytes(data.images));
  host::write_file_atomic(o.out / "labels.i64", raw_bytes(data.labels));
  host::write_file_atomic(o.out / "weights.f32", weights);
  manifest.update({{"model", o.model},
                   {"images", o.images},
                   {"size", o.size},
                   {"batch", o.batch},
                   {"epochs", o.epochs},
                   {"threads", threads},
                   {"lr", o.lr},
                   {"parameters", parameters}});
  host::write_file_atomic(o.out / "manifest.json", manifest.dump(2) + "\n");

  host::TrainSettings settings;
  settings.epochs = o.epochs + 1;
  settings.batch_size = o.batch;
  settings.threads = threads;
  auto optimizer = parts.optimizer;
  host::Trainer trainer(std::move(parts), settings, 5);
  torch::set_num_threads(static_cast<int>(threads));
  torch::Generator generator = at::make_generator<at::CPUGeneratorImpl>(5);
  // One epoch; returns the mean training loss.
  auto epoch = [&](int64_t number) {
    if (o.loop == "trainer") return trainer.train_epoch(data, number).loss;
    auto& model = trainer.model();
    model.train();
    torch::Tensor order = torch::randperm(o.images, generator, torch::kLong);
    double sum = 0;
    for (int64_t start = 0; start < o.images; start += o.batch) {
      torch::Tensor index = order.slice(0, start, std::min(o.images, start + o.batch));
      torch::Tensor x = data.images.index_select(0, index).to(torch::kFloat32).div_(255.0);
      torch::Tensor y = data.labels.index_select(0, index);
      torch::Tensor loss = torch::nn::functional::cross_entropy(model.forward(x), y);
      optimizer->zero_grad();
      loss.backward();
      optimizer->step();
      sum += loss.item<double>() * static_cast<double>(index.size(0));
    }
    return sum / static_cast<double>(o.images);
  };
  epoch(1);  // warm-up: allocator and thread pool, not measured
  const auto start = std::chrono::steady_clock::now();
  double last_loss = 0;
  for (int64_t number = 2; number <= o.epochs + 1; ++number) last_loss = epoch(number);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const nlohmann::json result = {{"implementation", o.loop == "trainer" ? "bachlab Trainer (LibTorch " TORCH_VERSION ")"
                                                                         : "bare LibTorch " TORCH_VERSION " loop"},
                                 {"images_per_second", static_cast<double>(o.images * o.epochs) / seconds},
                                 {"seconds", seconds},
                                 {"last_epoch_loss", last_loss}};
  std::cout << result.dump() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app("bachlab's side of the training-loop comparison with plain PyTorch (bench/reference/compare.sh)");
  app.add_option("--out", o.out, "Folder for the shared tensors, weights and manifest")->required();
  app.add_option("--model", o.model, "Model plugin (reference_loop.py builds model4a)");
  app.add_option("--images", o.images, "Training images")->check(CLI::PositiveNumber);
  app.add_option("--size", o.size, "Side of the square images")->check(CLI::PositiveNumber);
  app.add_option("--batch", o.batch, "Batch size")->check(CLI::PositiveNumber);
  app.add_option("--epochs", o.epochs, "Timed epochs, after one warm-up epoch")->check(CLI::PositiveNumber);
  app.add_option("--threads", o.threads, "Intra-op threads; 0: every core");
  app.add_option("--lr", o.lr, "Adam learning rate");
  app.add_option("--loop", o.loop, "trainer: bachlab's Trainer; bare: the reference's loop in LibTorch")
      ->check(CLI::IsMember({"trainer", "bare"}));
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::cerr << "reference_loop: " << e.what() << "\n";
    return 1;
  }
}
