#pragma once
// What a run needs in memory at least, worked out before anything is decoded or trained, so
// `bachlab check` and `bachlab run` refuse a config that cannot fit (e.g. image_size = 4096)
// with the arithmetic instead of an allocator's backtrace minutes later.

#include "host/train/experiment.h"

#include <cstdint>
#include <string>

namespace bachlab::host {

/// A lower bound: the parts that can be counted without running the model. Activations
/// (which depend on the network) come on top.
struct MemoryEstimate {
  int64_t photos = 0;
  int64_t photo_height = 0;  ///< As prepared: after scale, or image_size x image_size.
  int64_t photo_width = 0;
  double photo_bytes = 0;    ///< The prepared photos as uint8, plus the splits' copies of them.
  double batch_bytes = 0;    ///< One float batch of model inputs and its normalised copy.
  double model_bytes = 0;    ///< Weights, gradients and two optimizer moments per trainable weight.
  double total() const { return photo_bytes + batch_bytes + model_bytes; }
  /// "at least 1.9 GiB: 400 photos of 3x768x1024 ... (1.8 GiB), ..."
  std::string describe() const;
};

/// The estimate for `plan` on `photos` photos of `height` x `width` pixels as stored.
MemoryEstimate estimate_memory(const ExperimentPlan& plan, int64_t photos, int64_t height, int64_t width);

/// The estimate for `plan`'s dataset: photo count and size from the synthetic settings, or
/// from the listing and the first photo (the only one decoded).
MemoryEstimate estimate_memory(const ExperimentPlan& plan);

/// This machine's physical memory in bytes (0 if unknown).
double physical_memory_bytes();

/// Throws Error naming `config` and the arithmetic if the estimate exceeds `available`
/// bytes (by default the machine's physical memory).
void check_memory(const MemoryEstimate& estimate, const std::string& config, double available = physical_memory_bytes());

/// What a new run checks before it decodes its photos or makes its folder, and `check` with
/// it: that it fits in this machine's memory, that its patches fit in its prepared photos
/// (the first photo's size stands for all) and that its stain reference photo, if any,
/// gives a target. Throws Error naming `config`; returns the memory estimate.
MemoryEstimate check_run_can_start(const ExperimentPlan& plan, const std::string& config);

}  // namespace bachlab::host
