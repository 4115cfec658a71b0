#include "host/train/patch_sampler.h"

#include "host/config/config.h"

#include <bachlab/sdk/param_table.h>
#include <bachlab/sdk/error.h>

#include <fmt/format.h>

namespace bachlab::host {

PatchSettings read_patch_settings(sdk::ParamTable& table) {
  PatchSettings s;
  s.size = table.get_int("size", s.size, {0, 8192});
  s.per_image = table.get_int("per_image", s.per_image, {1, 100000});
  s.min_tissue = table.get_float("min_tissue", s.min_tissue, {0.0, 1.0});
  if (s.size > 0 && s.size < 8) table.fail("size", fmt::format("must be 0 (whole images) or at least 8 (was {})", s.size));
  return s;
}

PatchSettings read_patch_settings(Config& config) { return read_patch_settings(config.table("data.patches")); }

void check_patch_fits(const PatchSettings& settings, int64_t height, int64_t width) {
  if (height < settings.size || width < settings.size)
    throw Error(fmt::format("[data.patches] size = {} is larger than the prepared images ({}x{} pixels, width x "
                            "height); use a smaller size or a larger [data] image_size or scale",
                            settings.size, width, height));
}

PatchSampler::PatchSampler(const TensorSplit& split, PatchSettings settings)
    : split_(split), settings_(settings) {
  if (!settings_.enabled()) throw Error("PatchSampler needs [data.patches] size > 0");
  if (split_.size() > 0) check_patch_fits(settings_, split_.images.size(2), split_.images.size(3));
}

int64_t PatchSampler::start_epoch(torch::Generator& generator) {
  const int64_t n = split_.size() * settings_.per_image;
  if (n == 0) {
    positions_ = torch::zeros({0, 2}, torch::kLong);
    order_ = torch::zeros({0}, torch::kLong);
    return 0;
  }
  const int64_t s = settings_.size;
  const int64_t h = split_.images.size(2), w = split_.images.size(3);
  // min_tissue = 0 draws one position per patch, so its numbers do not depend on kTissueTries.
  const int64_t tries = settings_.min_tissue > 0 ? kTissueTries : 1;
  torch::Tensor ys = torch::randint(0, h - s + 1, {n, tries}, generator, torch::kLong);
  torch::Tensor xs = torch::randint(0, w - s + 1, {n, tries}, generator, torch::kLong);
  positions_ = torch::empty({n, 2}, torch::kLong);
  auto y = ys.accessor<int64_t, 2>();
  auto x = xs.accessor<int64_t, 2>();
  auto out = positions_.accessor<int64_t, 2>();
  for (int64_t i = 0; i < n; ++i) {
    int64_t best = 0;
    if (tries > 1) {
      const torch::Tensor image = split_.images[i / settings_.per_image];
      double best_fraction = -1;
      for (int64_t t = 0; t < tries; ++t) {
        const double fraction = tissue_fraction(image.slice(1, y[i][t], y[i][t] + s).slice(2, x[i][t], x[i][t] + s));
        if (fraction > best_fraction) {
          best_fraction = fraction;
          best = t;
        }
        if (fraction >= settings_.min_tissue) break;
      }
    }
    out[i][0] = y[i][best];
    out[i][1] = x[i][best];
  }
  order_ = torch::randperm(n, generator, torch::kLong);
  return n;
}

Batch PatchSampler::batch(int64_t begin, int64_t end) const {
  const int64_t s = settings_.size;
  std::vector<torch::Tensor> patches;
  patches.reserve(static_cast<size_t>(end - begin));
  torch::Tensor rows = order_.slice(0, begin, end).div(settings_.per_image, "floor");
  auto order = order_.accessor<int64_t, 1>();
  auto position = positions_.accessor<int64_t, 2>();
  for (int64_t i = begin; i < end; ++i) {
    const int64_t sample = order[i];
    const int64_t y = position[sample][0], x = position[sample][1];
    patches.push_back(split_.images[sample / settings_.per_image].slice(1, y, y + s).slice(2, x, x + s));
  }
  return {torch::stack(patches), split_.labels.index_select(0, rows), rows};
}

}  // namespace bachlab::host
