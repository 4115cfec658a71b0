#include "host/train/memory_estimate.h"

#include "host/data/dataset.h"
#include "host/data/image_decode.h"
#include "host/data/prepare.h"
#include "host/train/patch_sampler.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>

namespace bachlab::host {

namespace {

std::string gib(double bytes) {
  if (bytes < 1024.0 * 1024 * 1024) return fmt::format("{:.0f} MiB", std::ceil(bytes / (1024.0 * 1024)));
  return fmt::format("{:.1f} GiB", bytes / (1024.0 * 1024 * 1024));
}

}  // namespace

std::string MemoryEstimate::describe() const {
  return fmt::format("at least {}: {} photos of 3x{}x{} as uint8 with the splits' copies ({}), one batch of inputs "
                     "({}), weights with gradients and optimizer state ({}); activations come on top",
                     gib(total()), photos, photo_height, photo_width, gib(photo_bytes), gib(batch_bytes),
                     gib(model_bytes));
}

MemoryEstimate estimate_memory(const ExperimentPlan& plan, int64_t photos, int64_t height, int64_t width) {
  MemoryEstimate e;
  e.photos = photos;
  if (plan.data.scale > 0) {
    e.photo_height = std::max<int64_t>(1, std::llround(double(height) * plan.data.scale));
    e.photo_width = std::max<int64_t>(1, std::llround(double(width) * plan.data.scale));
  } else {
    e.photo_height = e.photo_width = plan.data.image_size;
  }
  const double photo = 3.0 * double(e.photo_height) * double(e.photo_width);
  // The prepared set, and the train/val/test tensors taken from it (a copy of every photo).
  e.photo_bytes = 2.0 * double(photos) * photo;
  // The model's input: patches, or whole photos; float32, and the normalised copy.
  const double input = plan.patches.enabled() ? 3.0 * double(plan.patches.size) * double(plan.patches.size) : photo;
  e.batch_bytes = 2.0 * 4.0 * double(plan.train.batch_size) * input;
  // float32 weights; trainable ones also have a gradient and (Adam, RMSprop) two moments.
  e.model_bytes = 4.0 * double(plan.frozen_parameters) + 16.0 * double(plan.trainable_parameters);
  return e;
}

MemoryEstimate estimate_memory(const ExperimentPlan& plan) {
  if (plan.data.source == DataSource::synthetic) {
    const auto& s = plan.data.synthetic;
    return estimate_memory(plan, int64_t(s.per_class) * 4, s.height, s.width);
  }
  const Dataset dataset = discover_dataset(plan.data);
  if (dataset.files.empty()) return estimate_memory(plan, 0, 0, 0);
  const cv::Mat first = load_image_rgb(dataset.files.front(), plan.data.max_pixels);
  return estimate_memory(plan, int64_t(dataset.files.size()), first.rows, first.cols);
}

double physical_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? double(pages) * double(page) : 0.0;
}

void check_memory(const MemoryEstimate& estimate, const std::string& config, double available) {
  if (available <= 0 || estimate.total() <= available) return;
  throw Error(fmt::format("{}: this run needs more than this machine's {} of memory, {}. Lower [data] image_size "
                          "or scale, [train] batch_size or the photo count",
                          config, gib(available), estimate.describe()));
}

MemoryEstimate check_run_can_start(const ExperimentPlan& plan, const std::string& config) {
  const MemoryEstimate estimate = estimate_memory(plan);
  check_memory(estimate, config);
  if (plan.patches.enabled() && estimate.photos > 0) {
    try {
      check_patch_fits(plan.patches, estimate.photo_height, estimate.photo_width);
    } catch (const Error& e) {
      throw Error(config + ": " + e.what());
    }
  }
  // Names the config and the key itself (a glass-only or unreadable reference photo).
  if (!plan.data.stain_reference.empty()) fit_stain_reference(plan.data);
  return estimate;
}

}  // namespace bachlab::host
