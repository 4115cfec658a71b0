#include "host/train/precision.h"

#include "host/train/trainer.h"

#include <bachlab/sdk/error.h>
#include <bachlab/sdk/model.h>

#include <ATen/autocast_mode.h>
#include <fmt/format.h>
#include <torch/version.h>

#include <fstream>
#include <set>
#include <sstream>

namespace bachlab::host {

// LibTorch 2.4 replaced the per-device autocast setters with ones taking the device type
// and deprecated the old ones; 1.13 (Debian 12) has only the old ones.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define BACHLAB_AUTOCAST_BY_DEVICE_TYPE 1
#endif

namespace {

bool autocast_enabled(bool cuda) {
#ifdef BACHLAB_AUTOCAST_BY_DEVICE_TYPE
  return at::autocast::is_autocast_enabled(cuda ? at::kCUDA : at::kCPU);
#else
  return cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

at::ScalarType autocast_dtype(bool cuda) {
#ifdef BACHLAB_AUTOCAST_BY_DEVICE_TYPE
  return at::autocast::get_autocast_dtype(cuda ? at::kCUDA : at::kCPU);
#else
  return cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}

void set_autocast(bool cuda, bool enabled, at::ScalarType dtype) {
#ifdef BACHLAB_AUTOCAST_BY_DEVICE_TYPE
  const at::DeviceType type = cuda ? at::kCUDA : at::kCPU;
  at::autocast::set_autocast_dtype(type, dtype);
  at::autocast::set_autocast_enabled(type, enabled);
#else
  if (cuda) {
    at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(enabled);
  } else {
    at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::set_cpu_enabled(enabled);
  }
#endif
}

// The first CPU's feature flags from /proc/cpuinfo (Linux): what the kernel found the CPU
// to support, which also covers a virtual machine that hides instructions from its guest.
std::set<std::string> cpu_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::set<std::string> flags;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    for (std::string word; words >> word;) flags.insert(word);
    break;
  }
  return flags;
}

}  // namespace

bool native_bf16(const torch::Device& device) {
  if (device.is_cuda()) return true;
  static const bool cpu = [] {
    const std::set<std::string> flags = cpu_flags();
    return flags.count("avx512_bf16") > 0 || flags.count("amx_bf16") > 0;
  }();
  return cpu;
}

Precision resolve_precision(Precision requested, const torch::Device& device, std::string& warning) {
  warning.clear();
  if (requested == Precision::bf16 && !native_bf16(device)) {
    warning = "[train] precision = \"bf16\": this CPU has no bfloat16 instructions (no avx512_bf16 or amx_bf16 in "
              "/proc/cpuinfo), where bf16 would be emulated and slower than fp32; training in fp32 instead";
    return Precision::fp32;
  }
  return requested;
}

AutocastScope::AutocastScope(Precision precision, const torch::Device& device) {
  if (precision != Precision::bf16) return;
  active_ = true;
  cuda_ = device.is_cuda();
  was_enabled_ = autocast_enabled(cuda_);
  previous_dtype_ = autocast_dtype(cuda_);
  set_autocast(cuda_, true, at::kBFloat16);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  // The casts autocast cached for this scope (of weights) are dropped when the outermost
  // scope ends, as torch.autocast's __exit__ does.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_autocast(cuda_, was_enabled_, previous_dtype_);
}

void MixedPrecision::on_batch_begin(Trainer& trainer, const BatchBegin&) {
  scope_.emplace(precision_, trainer.device());
}

void to_channels_last(sdk::Network& model) {
  torch::NoGradGuard no_grad;
  for (auto& p : model.parameters())
    if (p.dim() == 4) p.set_data(p.data().contiguous(at::MemoryFormat::ChannelsLast));
  for (auto& b : model.buffers())
    if (b.dim() == 4) b.set_data(b.data().contiguous(at::MemoryFormat::ChannelsLast));
}

torch::Tensor model_layout(const torch::Tensor& images, bool channels_last) {
  if (!channels_last || images.dim() != 4) return images;
  return images.contiguous(at::MemoryFormat::ChannelsLast);
}

}  // namespace bachlab::host
