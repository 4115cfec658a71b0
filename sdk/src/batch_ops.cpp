#include <bachlab/sdk/batch_ops.h>

namespace bachlab::sdk {

std::string shape_text(const torch::Tensor& tensor) {
  std::string text;
  for (int64_t d : tensor.sizes()) text += (text.empty() ? "" : ", ") + std::to_string(d);
  return "(" + text + ")";
}

void check_batch(const torch::Tensor& batch, const std::string& plugin, int64_t channels) {
  if (!batch.defined() || batch.dim() != 4 || !batch.is_floating_point())
    throw Error("augmentation \"" + plugin + "\": expected a floating-point batch of shape (N, C, H, W), found " +
                (batch.defined() ? std::string(batch.is_floating_point() ? "a float" : "an integer") +
                                       " tensor of shape " + shape_text(batch)
                                 : std::string("an undefined tensor")) +
                "; augmentations run on decoded image batches, before the model");
  if (channels > 0 && batch.size(1) != channels)
    throw Error("augmentation \"" + plugin + "\": expected " + std::to_string(channels) +
                " (RGB) channels, found a batch of shape " + shape_text(batch) + "; use it only with colour images");
}

void check_unit_range(const torch::Tensor& batch, const std::string& plugin) {
  constexpr double kSlack = 1e-3;
  if (batch.numel() == 0) return;
  auto extremes = torch::stack({batch.min(), batch.max()}).to(torch::kDouble).cpu();
  double low = extremes[0].item<double>(), high = extremes[1].item<double>();
  if (low < -kSlack || high > 1 + kSlack) {
    char range[64];
    std::snprintf(range, sizeof range, "[%.3g, %.3g]", low, high);
    throw Error("augmentation \"" + plugin + "\": expected pixel values in [0, 1], found values in " + range +
                "; it works on unit-range RGB images, so standardise after augmenting, not before");
  }
}

torch::Tensor uniform(torch::Generator& generator, torch::IntArrayRef shape, double low, double high,
                             const torch::Tensor& like) {
  auto u = torch::rand(shape, generator, torch::TensorOptions().dtype(torch::kFloat).device(generator.device()));
  return (u * (high - low) + low).to(like.options());
}
}  // namespace bachlab::sdk
