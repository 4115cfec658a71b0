#include "host/eval/photo_prediction.h"

#include "host/config/config.h"
#include "host/data/parallel.h"
#include "host/data/tissue.h"

#include <bachlab/sdk/param_table.h>
#include <bachlab/sdk/error.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace bachlab::host {

PhotoPredictionSettings read_photo_prediction_settings(sdk::ParamTable& eval, sdk::ParamTable& eval_patches,
                                                       int64_t patch_size, double min_tissue) {
  PhotoPredictionSettings s;
  s.patch_size = patch_size;
  s.min_tissue = min_tissue;
  s.tta = kTtas.read(eval, "tta", s.tta);
  s.stride = eval_patches.get_int("stride", s.stride, {0, 8192});
  eval_patches.describe("stride", "", "0 (the patch size)");
  s.aggregate = kAggregates.read(eval_patches, "aggregate", s.aggregate);
  if (patch_size == 0) {
    for (const char* key : {"stride", "aggregate"})
      if (eval_patches.has(key))
        eval_patches.fail(key, "only applies to patch prediction, but [data.patches] size is 0 (whole photos); "
                               "set [data.patches] size or remove this key");
  } else if (s.stride > patch_size) {
    eval_patches.fail("stride", fmt::format("must be at most the patch size {} so the grid covers the whole photo "
                                            "(was {})",
                                            patch_size, s.stride));
  }
  if (s.stride == 0) s.stride = patch_size;
  return s;
}

PhotoPredictionSettings read_photo_prediction_settings(Config& config, int64_t patch_size, double min_tissue) {
  return read_photo_prediction_settings(config.table("eval"), config.table("eval.patches"), patch_size, min_tissue);
}

std::vector<int64_t> grid_starts(int64_t length, int64_t size, int64_t stride) {
  if (size > length || size <= 0)
    throw Error(fmt::format("a patch of {} pixels does not fit in an image side of {} pixels; use a smaller "
                            "[data.patches] size or a larger image",
                            size, length));
  if (stride <= 0) stride = size;
  std::vector<int64_t> starts;
  for (int64_t start = 0; start + size < length; start += stride) starts.push_back(start);
  starts.push_back(length - size);
  return starts;
}

torch::Tensor grid_positions(int64_t height, int64_t width, int64_t size, int64_t stride) {
  const auto ys = grid_starts(height, size, stride);
  const auto xs = grid_starts(width, size, stride);
  torch::Tensor out = torch::empty({static_cast<int64_t>(ys.size() * xs.size()), 2}, torch::kLong);
  auto a = out.accessor<int64_t, 2>();
  int64_t i = 0;
  for (int64_t y : ys)
    for (int64_t x : xs) {
      a[i][0] = y;
      a[i][1] = x;
      ++i;
    }
  return out;
}

int64_t tta_count(Tta tta) {
  switch (tta) {
    case Tta::none: return 1;
    case Tta::flips: return 4;
    case Tta::d4: return 8;
  }
  return 1;
}

torch::Tensor tta_transform(const torch::Tensor& batch, Tta tta, int64_t k) {
  if (tta == Tta::flips) {
    switch (k) {
      case 0: return batch;
      case 1: return batch.flip({3});
      case 2: return batch.flip({2});
      default: return batch.flip({2, 3});
    }
  }
  if (tta == Tta::d4) {
    torch::Tensor out = k % 4 == 0 ? batch : torch::rot90(batch, k % 4, {2, 3});
    return k >= 4 ? out.flip({3}) : out;
  }
  return batch;
}

torch::Tensor tta_probabilities(const torch::Tensor& batch, const PatchProbabilities& model, Tta tta) {
  const int64_t n = tta_count(tta);
  if (tta == Tta::d4 && batch.size(2) != batch.size(3))
    throw Error(fmt::format("[eval] tta = \"d4\" rotates inputs by 90 degrees, which needs square inputs (they are "
                            "{}x{}); use tta = \"flips\", or predict square patches ([data.patches] size)",
                            batch.size(3), batch.size(2)));
  torch::Tensor sum;
  for (int64_t k = 0; k < n; ++k) {
    torch::Tensor p = model(tta_transform(batch, tta, k).contiguous()).to(torch::kFloat32);
    sum = k == 0 ? p : sum + p;
  }
  return sum / static_cast<double>(n);
}

torch::Tensor aggregate_patches(const torch::Tensor& probabilities, Aggregate aggregate) {
  const int64_t p = probabilities.size(0);
  const torch::Tensor mean = probabilities.mean(0);
  if (aggregate == Aggregate::vote) {
    // Half a vote at most goes to the mean probability: it breaks ties, never a lead.
    const double bonus = 0.5 / static_cast<double>(p);
    return (vote_shares(probabilities) + mean * bonus) / (1.0 + bonus);
  }
  if (aggregate == Aggregate::max) {
    torch::Tensor top = std::get<0>(probabilities.max(0));
    return top / top.sum().clamp_min(1e-12);
  }
  return mean;
}

torch::Tensor vote_shares(const torch::Tensor& probabilities) {
  torch::Tensor votes = torch::zeros({probabilities.size(1)}, probabilities.options());
  votes.index_add_(0, probabilities.argmax(1), torch::ones({probabilities.size(0)}, probabilities.options()));
  return votes / static_cast<double>(probabilities.size(0));
}

torch::Tensor photo_probabilities(const torch::Tensor& patch_probabilities, const PhotoPredictionSettings& settings) {
  if (settings.aggregate != Aggregate::learned || !settings.aggregator)
    return aggregate_patches(patch_probabilities, settings.aggregate);
  return settings.aggregator->probabilities(photo_features(patch_probabilities))[0];
}

torch::Tensor counted_probabilities(const PhotoPatches& patches) {
  return patches.counted.any().item<bool>() ? patches.probabilities.index({patches.counted}) : patches.probabilities;
}

double PhotoPredictions::patch_accuracy() const {
  return patch_total > 0 ? static_cast<double>(patch_correct) / static_cast<double>(patch_total)
                         : std::numeric_limits<double>::quiet_NaN();
}

PhotoPredictions predict_photos(const torch::Tensor& images, const torch::Tensor& labels,
                                const PatchProbabilities& model, const PhotoPredictionSettings& settings,
                                bool keep_patches) {
  PhotoPredictions out;
  const int64_t n = images.size(0);
  const int64_t h = images.size(2), w = images.size(3);
  const bool has_labels = labels.defined() && labels.numel() == n;
  const int64_t chunk = std::max<int64_t>(1, settings.batch_size);
  std::vector<torch::Tensor> rows, features;
  double loss_sum = 0;
  auto score = [&](int64_t i, const torch::Tensor& photo, const torch::Tensor& used) {
    if (!has_labels) return;
    const int64_t label = labels[i].item<int64_t>();
    loss_sum -= std::log(std::max(photo[label].item<double>(), 1e-7));
    out.patch_correct += used.argmax(1).eq(label).sum().item<int64_t>();
    out.patch_total += used.size(0);
  };
  auto finish = [&] {
    out.probabilities = rows.empty() ? torch::empty({0, 0}) : torch::stack(rows);
    if (!features.empty()) out.features = torch::stack(features);
    if (has_labels && n > 0) out.loss = loss_sum / static_cast<double>(n);
    return out;
  };

  // On a terminal, for a step that runs for more than half a second (validation of a patch
  // model every epoch, a test split, predict); erased when done.
  Progress progress(settings.tta == Tta::none ? "predicting photos"
                                              : "predicting photos (TTA " + kTtas.name(settings.tta) + ")",
                    static_cast<size_t>(n), true);
  if (settings.patch_size == 0) {
    // Whole photos: one input each, batched across photos; the "patch" is the photo.
    for (int64_t start = 0; start < n; start += chunk) {
      const int64_t end = std::min(n, start + chunk);
      const torch::Tensor p = tta_probabilities(images.slice(0, start, end), model, settings.tta);
      for (int64_t i = start; i < end; ++i) {
        rows.push_back(p[i - start]);
        score(i, p[i - start], p.slice(0, i - start, i - start + 1));
        if (keep_patches)
          out.patches.push_back({torch::zeros({1, 2}, torch::kLong), p.slice(0, i - start, i - start + 1),
                                 torch::ones({1}, torch::kBool)});
      }
      progress.advance(static_cast<size_t>(end - start));
    }
    return finish();
  }

  const int64_t size = settings.patch_size;
  const torch::Tensor positions = grid_positions(h, w, size, settings.stride);
  const int64_t count = positions.size(0);
  const auto position = positions.accessor<int64_t, 2>();
  for (int64_t i = 0; i < n; ++i) {
    const torch::Tensor image = images[i];
    std::vector<torch::Tensor> patches;
    patches.reserve(static_cast<size_t>(count));
    for (int64_t j = 0; j < count; ++j)
      patches.push_back(
          image.slice(1, position[j][0], position[j][0] + size).slice(2, position[j][1], position[j][1] + size));
    torch::Tensor counted = torch::ones({count}, torch::kBool);
    if (settings.min_tissue > 0) {
      for (int64_t j = 0; j < count; ++j) counted[j] = tissue_fraction(patches[j]) >= settings.min_tissue;
      if (!counted.any().item<bool>()) counted.fill_(true);
    }
    // Blank patches that stay out of the aggregate need no model run, unless kept for heatmaps.
    std::vector<torch::Tensor> inputs;
    for (int64_t j = 0; j < count; ++j)
      if (keep_patches || counted[j].item<bool>()) inputs.push_back(patches[j]);
    std::vector<torch::Tensor> probabilities;
    for (size_t start = 0; start < inputs.size(); start += static_cast<size_t>(chunk)) {
      const size_t end = std::min(inputs.size(), start + static_cast<size_t>(chunk));
      torch::Tensor batch = torch::stack(std::vector<torch::Tensor>(inputs.begin() + start, inputs.begin() + end));
      probabilities.push_back(tta_probabilities(batch, model, settings.tta));
    }
    const torch::Tensor patch_probabilities = torch::cat(probabilities);
    const torch::Tensor used = keep_patches ? patch_probabilities.index({counted}) : patch_probabilities;
    const torch::Tensor photo = photo_probabilities(used, settings);
    rows.push_back(photo);
    if (settings.aggregate == Aggregate::learned) features.push_back(photo_features(used));
    score(i, photo, used);
    if (keep_patches) out.patches.push_back({positions.clone(), patch_probabilities, counted});
    progress.advance();
  }
  return finish();
}

}  // namespace bachlab::host
