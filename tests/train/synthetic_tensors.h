#pragma once
// Tiny labelled image tensors for the trainer's tests: each class has its own colour cast
// and stripe direction under heavy noise, so a small CNN can learn them in a few epochs
// while an untrained one is at chance.
#include "host/train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

namespace bachlab::host::testing {

inline TensorSplit synthetic_tensors(int64_t per_class, int64_t size, uint64_t seed, int64_t classes = 4) {
  torch::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  const int64_t n = per_class * classes;
  torch::Tensor labels = torch::arange(classes, torch::kLong).repeat_interleave(per_class);
  labels = labels.index_select(0, torch::randperm(n, generator, torch::kLong));
  torch::Tensor images = torch::rand({n, 3, size, size}, generator) * 0.6f;
  torch::Tensor ramp = torch::arange(size, torch::kFloat32).div(size);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = labels[i].item<int64_t>();
    images[i][c % 3] += 0.3f;
    torch::Tensor stripes = (c < 2 ? ramp.view({1, size}) : ramp.view({size, 1})).mul(6.28f * 2).sin().mul(0.1f);
    images[i] += stripes;
  }
  images = images.clamp(0, 1).mul(255).round().to(torch::kUInt8);
  return {images, labels};
}

}  // namespace bachlab::host::testing
