#pragma once
/// \file augmentation.h
/// Augmentation plugins transform a whole training batch at once; all randomness comes
/// from the generator the host passes, so a run is reproducible from its seed.

#include <bachlab/sdk/params.h>
#include <bachlab/sdk/plugin.h>

#include <torch/torch.h>

#include <memory>

namespace bachlab::sdk {

/// One configured augmentation.
class Augmentation {
 public:
  virtual ~Augmentation() = default;
  /// Returns the transformed batch (N, C, H, W), float in the batch's value range.
  /// Must not modify `batch` in place; must draw every random number from `generator`.
  virtual torch::Tensor apply(const torch::Tensor& batch, torch::Generator& generator) const = 0;
};

/// The interface an augmentation plugin's factory implements.
class AugmentationPlugin {
 public:
  virtual ~AugmentationPlugin() = default;
  /// Builds the augmentation from its settings.
  virtual std::shared_ptr<Augmentation> create(Params& params) const = 0;
};

template <>
struct KindInterface<kind_tags::augmentation> {
  using type = AugmentationPlugin;
};

}  // namespace bachlab::sdk
