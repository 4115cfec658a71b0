#include "host/train/checkpoints.h"

#include "host/train/early_stopping.h"
#include "host/train/model_state.h"
#include "host/train/trainer.h"
#include "host/util/atomic_file.h"
#include "host/util/shape_text.h"

#include <bachlab/sdk/error.h>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <zlib.h>

#include <mutex>
#include <unordered_set>

namespace bachlab::host {

namespace fs = std::filesystem;

namespace {

at::Generator& default_generator() {
  return const_cast<at::Generator&>(at::detail::getDefaultCPUGenerator());
}

torch::Tensor generator_state(at::Generator& generator) {
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

void set_generator_state(at::Generator& generator, const torch::Tensor& state) {
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

// crc32 of the stored tensors (names, shapes and bytes) and the training state.
std::string content_checksum(const NamedTensors& tensors, const std::string& state) {
  uLong crc = crc32_z(0, nullptr, 0);
  auto add = [&](const void* data, size_t size) { crc = crc32_z(crc, static_cast<const Bytef*>(data), size); };
  add(state.data(), state.size());
  for (const auto& [name, tensor] : tensors) {
    const torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
    add(name.data(), name.size());
    for (int64_t size : t.sizes()) add(&size, sizeof size);
    add(t.data_ptr(), t.numel() * t.element_size());
  }
  return fmt::format("crc32:{:08x}", crc);
}

// Writes the tensors of `module` that are in `keep` in Module::save's layout (parameters,
// buffers, then one nested archive per child), leaving out children with none kept.
bool save_tensors(torch::nn::Module& module, torch::serialize::OutputArchive& archive,
                  const std::unordered_set<const void*>& keep) {
  bool wrote = false;
  for (const auto& p : module.named_parameters(false))
    if (keep.count(p.value().unsafeGetTensorImpl())) {
      archive.write(p.key(), p.value());
      wrote = true;
    }
  for (const auto& b : module.named_buffers(false))
    if (keep.count(b.value().unsafeGetTensorImpl())) {
      archive.write(b.key(), b.value(), /*is_buffer=*/true);
      wrote = true;
    }
  for (const auto& child : module.named_children()) {
    torch::serialize::OutputArchive child_archive(archive.compilation_unit());
    if (save_tensors(*child.value(), child_archive, keep)) {
      archive.write(child.key(), child_archive);
      wrote = true;
    }
  }
  return wrote;
}

// Reads `tensors`' values from the model archive of checkpoint `file` into them. Every
// name and shape is compared before anything is copied, so a checkpoint of another
// architecture is refused saying which tensor differs.
void read_tensors(torch::serialize::InputArchive& archive, NamedTensors& tensors, const fs::path& file) {
  const std::string other = "; it belongs to a different model or config. Resume with the run folder that wrote it, "
                            "or start a new run";
  std::vector<torch::Tensor> stored_tensors;
  for (const auto& [name, tensor] : tensors) {
    // Nested modules are nested archives; walk the dotted name down to the tensor.
    torch::serialize::InputArchive* current = &archive;
    std::vector<torch::serialize::InputArchive> chain;
    chain.reserve(16);
    std::string rest = name;
    for (auto dot = rest.find('.'); dot != std::string::npos; dot = rest.find('.')) {
      chain.emplace_back();
      if (!current->try_read(rest.substr(0, dot), chain.back()))
        throw Error(file.string() + ": checkpoint has no tensor \"" + name + "\" of this model" + other);
      current = &chain.back();
      rest = rest.substr(dot + 1);
    }
    torch::Tensor stored;
    if (!current->try_read(rest, stored) && !current->try_read(rest, stored, true))
      throw Error(file.string() + ": checkpoint has no tensor \"" + name + "\" of this model" + other);
    if (stored.sizes() != tensor.sizes())
      throw Error(file.string() + ": tensor \"" + name + "\" has shape " + shape_text(stored.sizes()) +
                  " in the checkpoint but " + shape_text(tensor.sizes()) +
                  " in the model; the checkpoint belongs to a different model or config. Resume with the run "
                  "folder that wrote it, or start a new run");
    stored_tensors.push_back(stored);
  }
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < tensors.size(); ++i) tensors[i].second.copy_(stored_tensors[i]);
}

// What the checkpoint's state says about frozen weights: "" for a checkpoint of every
// tensor (any model without a frozen backbone, and those written before checkpoints
// left the frozen weights out). A state that does not parse gives "" too; the checksum
// check refuses it afterwards.
std::string stored_frozen_identity(const std::string& state) {
  const nlohmann::json j = nlohmann::json::parse(state, nullptr, false);
  if (!j.is_object() || !j.contains("frozen_weights") || !j.at("frozen_weights").is_string()) return "";
  return j.at("frozen_weights").get<std::string>();
}

// Reads checkpoint `file` into `model`, then checks what was loaded: every tensor finite,
// and the tensors with the training state matching the checksum the file was written
// with. Returns the whole archive for the caller's other parts (optimizer, generators);
// `state` receives the training state's JSON text.
torch::serialize::InputArchive load_checkpoint(sdk::Network& model, const fs::path& file,
                                               std::string* state = nullptr) {
  torch::serialize::InputArchive archive;
  archive.load_from(file.string());
  c10::IValue state_value, stored;
  archive.read("state", state_value);
  const std::string frozen = stored_frozen_identity(state_value.toStringRef());
  NamedTensors tensors = frozen.empty() ? named_state(model) : trained_state(model);
  if (!frozen.empty() && frozen != frozen_weights_identity(model)) {
    const std::string now = frozen_weights_identity(model);
    throw Error(file.string() + ": this checkpoint holds only the trained part of the model; its frozen part came "
                "from the weights in \"" + frozen + "\", but the model built from the config now has " +
                (now.empty() ? std::string("no frozen backbone") : "\"" + now + "\"") +
                ". The weights file changed since the run was trained; put the original file back, or start a "
                "new run");
  }
  torch::serialize::InputArchive model_archive;
  archive.read("model", model_archive);
  read_tensors(model_archive, tensors, file);
  if (!archive.try_read("checksum", stored) || !stored.isString())
    throw Error(file.string() + ": this checkpoint has no checksum (it was written by an older bachlab, or damaged); "
                "its content cannot be trusted. Start a new run");
  if (const std::string bad = first_non_finite(tensors); !bad.empty())
    throw Error(file.string() + ": tensor \"" + bad + "\" of this checkpoint holds NaN or infinite values; it was "
                "damaged or saved from a diverged run. Start a new run");
  const std::string computed = content_checksum(tensors, state_value.toStringRef());
  if (computed != stored.toStringRef())
    throw Error(file.string() + ": this checkpoint's content does not match its checksum (" + stored.toStringRef() +
                " stored, " + computed + " computed); the file is damaged. Resume from a copy, or start a new run");
  if (state) *state = state_value.toStringRef();
  return archive;
}

}  // namespace

void Checkpoints::prepare() {
  if (!writing_) return;
  fs::create_directories(folder_);
  // Checkpoints can be large; those half-written by killed runs would pile up.
  remove_orphaned_temp_files(folder_);
}

void Checkpoints::write(Trainer& trainer, const EpochRecord& record) {
  if (!writing_) return;
  if (trainer.best_epoch() == record.epoch) save(trainer, folder_ / "best.pt", false);
  save(trainer, folder_ / "last.pt", true);
}

void Checkpoints::save(Trainer& trainer, const fs::path& file, bool full) const {
  sdk::Network& model = trainer.model();
  const NamedTensors tensors = trained_state(model);
  std::unordered_set<const void*> keep;
  for (const auto& [name, tensor] : tensors) keep.insert(tensor.unsafeGetTensorImpl());
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive model_archive;
  save_tensors(model, model_archive, keep);
  archive.write("model", model_archive);
  nlohmann::json state = trainer.state();
  if (const std::string frozen = frozen_weights_identity(model); !frozen.empty()) state["frozen_weights"] = frozen;
  const std::string state_text = state.dump();
  archive.write("state", c10::IValue(state_text));
  archive.write("checksum", c10::IValue(content_checksum(tensors, state_text)));
  if (full) {
    torch::serialize::OutputArchive optimizer_archive;
    trainer.optimizer().save(optimizer_archive);
    archive.write("optimizer", optimizer_archive);
    archive.write("generator", generator_state(trainer.generator()));
    archive.write("default_generator", generator_state(default_generator()));
  }
  write_archive_atomic(file, archive);
}

bool Checkpoints::resume(Trainer& trainer) {
  const fs::path last = folder_ / "last.pt";
  const fs::path best = folder_ / "best.pt";
  if (!fs::exists(last)) return false;
  sdk::Network& model = trainer.model();
  if (fs::exists(best)) {
    try {
      load_checkpoint(model, best);
    } catch (const c10::Error& e) {
      throw Error(best.string() + ": cannot read this checkpoint (" + e.what_without_backtrace() +
                  "); it is damaged or was written by another version");
    }
    trainer.early_stopping().remember_best_weights(model);
  }
  try {
    std::string state_text;
    torch::serialize::InputArchive archive = load_checkpoint(model, last, &state_text);
    model.to(trainer.device());
    torch::serialize::InputArchive optimizer_archive;
    archive.read("optimizer", optimizer_archive);
    trainer.optimizer().load(optimizer_archive);
    torch::Tensor state;
    archive.read("generator", state);
    set_generator_state(trainer.generator(), state);
    archive.read("default_generator", state);
    set_generator_state(default_generator(), state);
    trainer.load_state(nlohmann::json::parse(state_text));
  } catch (const c10::Error& e) {
    throw Error(last.string() + ": cannot read this checkpoint (" + e.what_without_backtrace() +
                "); it is damaged or was written by another version");
  } catch (const nlohmann::json::exception& e) {
    throw Error(last.string() + ": the training state in this checkpoint is unreadable (" + std::string(e.what()) +
                ")");
  }
  return true;
}

void load_checkpoint_weights(sdk::Network& model, const fs::path& file) {
  if (!fs::exists(file))
    throw Error(file.string() + ": no such checkpoint; the run never finished an epoch. Resume it with "
                "`bachlab run --resume RUN_DIR` or start a new run");
  try {
    load_checkpoint(model, file);
  } catch (const c10::Error& e) {
    throw Error(file.string() + ": cannot read this checkpoint (" + e.what_without_backtrace() +
                "); it is damaged or was written by another version");
  }
}

}  // namespace bachlab::host
