// `bachlab export`: a run's final model as TorchScript with its forward, traced by
// LibTorch's own tracer (the C++ counterpart of torch.jit.trace), and the preprocessing
// `predict` does around it as JSON.
#include "host/train/run_steps.h"

#include "host/util/atomic_file.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/script.h>

#include <unistd.h>

namespace bachlab::host {

namespace fs = std::filesystem;

namespace {

// A torch::jit::Module holding the very tensors of `module` (parameters, buffers, child
// modules, by the same names): the tracer finds a tensor the trace reads among the
// module's attributes by identity, so they become the saved module's state rather than
// constants baked into its code.
torch::jit::Module mirror(const torch::nn::Module& module, const std::string& type_name,
                          const std::shared_ptr<torch::jit::CompilationUnit>& unit) {
  torch::jit::Module out(c10::QualifiedName(type_name), unit, /*shouldMangle=*/true);
  for (const auto& p : module.named_parameters(/*recurse=*/false)) out.register_parameter(p.key(), p.value(), false);
  for (const auto& b : module.named_buffers(/*recurse=*/false)) out.register_buffer(b.key(), b.value());
  for (const auto& child : module.named_children())
    out.register_module(child.key(), mirror(*child.value(), type_name + "_" + child.key(), unit));
  return out;
}

// The run folder whose model `run_dir` stands for: itself, or a cross-validation's refit.
fs::path exported_run(const fs::path& run_dir, const std::vector<fs::path>& plugin_paths) {
  const RunFile run = read_run_file(run_dir);
  const Opened opened = open_config(load_run_config(run_dir, run), PlanOverrides{run.epochs, run.seed}, plugin_paths);
  if (ensemble_root(opened.plan, run)) {
    std::string members;
    for (const auto& m : opened.plan.ensemble) members += " " + member_folder(run_dir, m.name).string();
    throw Error(run_dir.string() + ": an ensemble averages several models, which one TorchScript file does not hold; "
                "export each member's model (its refit) and average their probabilities:" + members);
  }
  if (!cross_validation_root(opened.plan, run)) return run_dir;
  const fs::path refit = refit_folder(run_dir);
  if (opened.plan.train.refit && fs::exists(refit / "metrics.json")) return refit;
  if (opened.plan.train.refit)
    throw Error(refit.string() + ": the refit model has not finished training; finish it with `bachlab run --resume " +
                run_dir.string() + "`, then export the run");
  throw Error(fmt::format("{}: a {}-fold cross-validation predicts with its {} fold models, which one TorchScript "
                          "file does not hold; export one fold ({}), or train the model on every photo with "
                          "[train] refit = true and export the run",
                          run_dir.string(), opened.plan.data.split.folds, opened.plan.data.split.folds,
                          fold_folder(run_dir, 0).string()));
}

nlohmann::ordered_json preprocessing_json(const LoadedModel& m, const fs::path& from, int64_t size) {
  const DataConfig& data = m.plan.data;
  const PhotoPredictionSettings& photo = m.plan.photo;
  nlohmann::ordered_json j;
  j["bachlab_export"] = 1;
  j["from_run"] = from.string();
  j["model"] = "model.pt";
  j["classes"] = m.classes;
  j["input"] = {{"shape", "N x 3 x S x S"}, {"S", size}, {"dtype", "float32"}, {"channels", "RGB"},
                {"values", "uint8 / 255, in [0, 1]; the run's normalisation is inside the model"}};
  j["output"] = "class probabilities (softmax over the classes), N x K, in the order of \"classes\"";
  j["resize"] = data.scale > 0 ? nlohmann::ordered_json{{"scale", data.scale}}
                               : nlohmann::ordered_json{{"image_size", data.image_size}};
  j["resize"]["interpolation"] =
      "OpenCV cv::INTER_AREA when a side shrinks, else cv::INTER_LINEAR; a scaled side is round(side * scale)";
  j["stain"] = m.stain_target ? nlohmann::ordered_json::parse(stain_target_to_json(*m.stain_target).dump())
                              : nlohmann::ordered_json();
  j["photo"] = {{"patch_size", photo.patch_size},
                {"stride", photo.patch_size > 0 && photo.stride == 0 ? photo.patch_size : photo.stride},
                {"tta", kTtas.name(photo.tta)},
                {"aggregate", kAggregates.name(photo.aggregate)},
                {"min_tissue", photo.min_tissue},
                {"tissue", "a pixel with some channel below 220 (of 255) is tissue"}};
  return j;
}

}  // namespace

ExportedModel export_model(const fs::path& run_dir, const fs::path& out_dir, const std::vector<fs::path>& plugin_paths) {
  const fs::path from = exported_run(run_dir, plugin_paths);
  if (!fs::exists(from / "metrics.json"))
    throw Error(from.string() + ": the run has not finished (no metrics.json); finish it with `bachlab run --resume " +
                outermost_run_folder(from).string() + "`, then export it");
  LoadedModel m = load_final_model(from, read_run_file(from), plugin_paths);
  if (m.plan.photo.aggregate == Aggregate::learned)
    throw Error(from.string() + ": [eval.patches] aggregate = \"learned\" combines patches with a fitted aggregator "
                "that the export does not carry yet; export a run with aggregate = \"mean\"");
  Trainer& trainer = *m.trainer;
  torch::NoGradGuard no_grad;
  const int64_t size = m.plan.spec.height;
  // Two photos of the input size, so the trace keeps the batch dimension free.
  const torch::Tensor example = torch::rand({2, 3, size, size}, torch::TensorOptions().dtype(torch::kFloat32));
  const torch::Tensor expected = trainer.unit_batch_probabilities(example);

  auto unit = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module module = mirror(trainer.model(), "__torch__.bachlab.ExportedModel", unit);
  auto traced = torch::jit::tracer::trace(
      {example},
      [&](torch::jit::Stack inputs) -> torch::jit::Stack {
        return {trainer.unit_batch_probabilities(inputs.at(0).toTensor())};
      },
      [](const torch::autograd::Variable&) { return std::string(); }, /*strict=*/true, /*force_outplace=*/false,
      &module);
  auto* forward = unit->create_function(c10::QualifiedName(*module.type()->name(), "forward"), traced.first->graph);
  module.type()->addMethod(forward);
  module.eval();

  fs::create_directories(out_dir);
  ExportedModel out;
  out.model = out_dir / "model.pt";
  out.preprocessing = out_dir / "preprocessing.json";
  out.from = from;
  out.input_size = size;
  // Saved beside its name and renamed once it loads back and agrees with the run's model.
  const fs::path partial = out_dir / fmt::format("model.pt.{}.tmp", ::getpid());
  try {
    module.save(partial.string());
    torch::jit::Module loaded = torch::jit::load(partial.string());
    const torch::Tensor got = loaded.forward({example}).toTensor();
    out.max_difference = (got - expected).abs().max().item<double>();
    if (!(out.max_difference <= 1e-5))
      throw Error(fmt::format("{}: the exported module's probabilities differ from the run's model by {:g} (over "
                              "1e-5): the model does something the tracer cannot record (control flow that depends "
                              "on the input); it was not written",
                              out.model.string(), out.max_difference));
    // The JSON first: a failure leaves the folder's previous pair as it was.
    write_file_atomic(out.preprocessing, preprocessing_json(m, from, size).dump(2) + "\n");
    fs::rename(partial, out.model);
  } catch (const c10::Error& e) {
    fs::remove(partial);
    throw Error(out.model.string() + ": the exported module does not save or load back (" +
                e.what_without_backtrace() + ")");
  } catch (...) {
    std::error_code ignored;
    fs::remove(partial, ignored);
    throw;
  }
  return out;
}

}  // namespace bachlab::host
