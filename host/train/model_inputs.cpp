#include "host/train/model_inputs.h"

#include "host/train/precision.h"

namespace bachlab::host {

PixelInputs::PixelInputs(BatchTransform normalize, std::vector<std::shared_ptr<sdk::Augmentation>> augmentations,
                         torch::Device device, bool channels_last)
    : normalize_(std::move(normalize)),
      augmentations_(std::move(augmentations)),
      device_(device),
      channels_last_(channels_last) {}

torch::Tensor PixelInputs::training_batch(const torch::Tensor& batch, torch::Generator& generator) {
  torch::Tensor x = to_unit(batch);
  for (const auto& augmentation : augmentations_) x = augmentation->apply(x, generator);
  return x;
}

torch::Tensor PixelInputs::logits(sdk::Network& model, const torch::Tensor& inputs) {
  return model.forward(model_layout(normalize_(to_unit(inputs)).to(device_), channels_last_)).to(torch::kFloat32);
}

}  // namespace bachlab::host
