// Random horizontal and/or vertical flips, each image and each direction drawn
// independently with probability p: Keras' ImageDataGenerator horizontal_flip and
// vertical_flip (which use p = 0.5). Histology has no canonical orientation, so both
// directions are label-preserving.
#include <bachlab/sdk/augmentation.h>

#include <cstdio>
#include <memory>
#include <string>

namespace {

using bachlab::sdk::Params;

// ---------------------------------------------------------------------------------------
// Batch checks and random draws every augmentation plugin repeats, because plugins share
// code only through the SDK; proposed for the SDK as <bachlab/sdk/augmentation_util.h>.
// ---------------------------------------------------------------------------------------

// Numbers are drawn as float32 on the generator's device and then moved, so the draws
// depend only on the generator, never on the batch's dtype or device.
[[maybe_unused]] torch::Tensor uniform(torch::Generator& generator, torch::IntArrayRef shape, double low, double high,
                      const torch::Tensor& like) {
  auto u = torch::rand(shape, generator, torch::TensorOptions().dtype(torch::kFloat).device(generator.device()));
  return (u * (high - low) + low).to(like.options());
}

void check_batch(const torch::Tensor& batch, const std::string& plugin, int64_t channels = 0) {
  auto shape = [&] {
    std::string text;
    for (int64_t d : batch.sizes()) text += (text.empty() ? "" : ", ") + std::to_string(d);
    return "(" + text + ")";
  };
  if (!batch.defined() || batch.dim() != 4 || !batch.is_floating_point())
    throw bachlab::Error("augmentation \"" + plugin + "\": expected a floating-point batch of shape (N, C, H, W), found " +
                         (batch.defined() ? std::string(batch.is_floating_point() ? "a float" : "an integer") +
                                                " tensor of shape " + shape()
                                          : std::string("an undefined tensor")) +
                         "; augmentations run on decoded image batches, before the model");
  if (channels > 0 && batch.size(1) != channels)
    throw bachlab::Error("augmentation \"" + plugin + "\": expected " + std::to_string(channels) +
                         " (RGB) channels, found a batch of shape " + shape() +
                         "; use it only with colour images");
}

// Colour operations assume unit-range RGB: a standardised batch would be clamped or its
// logarithm taken, silently producing garbage, so it is refused instead.
[[maybe_unused]] void check_unit_range(const torch::Tensor& batch, const std::string& plugin) {
  constexpr double kSlack = 1e-3;
  if (batch.numel() == 0) return;
  auto extremes = torch::stack({batch.min(), batch.max()}).to(torch::kDouble).cpu();
  double low = extremes[0].item<double>(), high = extremes[1].item<double>();
  if (low < -kSlack || high > 1 + kSlack) {
    char range[64];
    std::snprintf(range, sizeof range, "[%.3g, %.3g]", low, high);
    throw bachlab::Error("augmentation \"" + plugin + "\": expected pixel values in [0, 1], found values in " + range +
                         "; it works on unit-range RGB images, so standardise after augmenting, not before");
  }
}

// ---------------------------------------------------------------------------------------

/// The flip's settings, as read from its [[augment]] table.
struct FlipOptions {
  /// Flip left-right. Default: true
  TORCH_ARG(bool, horizontal) = true;
  /// Flip top-bottom. Default: false (Keras' default); histology usually turns it on.
  TORCH_ARG(bool, vertical) = false;
  /// Probability of each flip, per image and direction. Default: 0.5
  TORCH_ARG(double, p) = 0.5;
};

FlipOptions read_options(Params& params) {
  FlipOptions o;
  o.horizontal(params.get_bool("horizontal", o.horizontal()));
  o.vertical(params.get_bool("vertical", o.vertical()));
  o.p(params.get_float("p", o.p(), {0.0, 1.0}));
  if (!o.horizontal() && !o.vertical())
    params.fail("horizontal", "and vertical are both false, so flip would never change an image; set one of them "
                              "to true or remove this [[augment]] entry");
  return o;
}

class Flip : public bachlab::sdk::Augmentation {
 public:
  explicit Flip(FlipOptions options) : options_(std::move(options)) {}

  torch::Tensor apply(const torch::Tensor& batch, torch::Generator& generator) const override {
    check_batch(batch, "flip");
    const int64_t n = batch.size(0);
    // Both directions are always drawn, so turning one off leaves the other's draws as they were.
    auto flip_h = (uniform(generator, {n}, 0, 1, batch) < options_.p()).view({n, 1, 1, 1});
    auto flip_v = (uniform(generator, {n}, 0, 1, batch) < options_.p()).view({n, 1, 1, 1});
    torch::Tensor out = batch;
    if (options_.horizontal()) out = torch::where(flip_h, out.flip({3}), out);
    if (options_.vertical()) out = torch::where(flip_v, out.flip({2}), out);
    // A new tensor even when nothing flipped, so that the caller owns what it gets.
    return out.is_same(batch) ? batch.clone() : out;
  }

 private:
  FlipOptions options_;
};

class FlipPlugin : public bachlab::sdk::AugmentationPlugin {
 public:
  std::shared_ptr<bachlab::sdk::Augmentation> create(Params& params) const override {
    auto options = read_options(params);
    params.check();
    return std::make_shared<Flip>(options);
  }
};

}  // namespace

BACHLAB_PLUGIN(augmentation, "flip", "1.0.0", "Random horizontal and/or vertical flips", FlipPlugin)
