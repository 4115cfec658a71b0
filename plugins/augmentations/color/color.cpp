// Random brightness, contrast, saturation and hue, per image, as torchvision's
// ColorJitter defines them: brightness multiplies by b ~ U(1 - brightness, 1 + brightness);
// contrast blends with the image's mean grey level by c ~ U(1 - contrast, 1 + contrast);
// saturation blends with the image's own greyscale by s ~ U(1 - saturation, 1 + saturation);
// hue turns the colour by h ~ U(-hue, hue) of a full turn. Every step clamps to [0, 1].
//
// Differences from ColorJitter, chosen so that the whole batch is done at once: the order
// is fixed (brightness, contrast, saturation, hue) rather than shuffled per call, and hue
// is a rotation of the chroma plane of YIQ (one 3x3 matrix per image) rather than a
// round trip through HSV; both keep greys grey and luminance about the same. A step whose
// range is 0 is skipped, so it is an exact identity.
#include <bachlab/sdk/augmentation.h>
#include <bachlab/sdk/batch_ops.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

namespace {

using bachlab::sdk::check_batch;
using bachlab::sdk::check_unit_range;
using bachlab::sdk::uniform;
using bachlab::sdk::Params;

constexpr double kPi = 3.14159265358979323846;

/// The colour jitter's settings, as read from its [[augment]] table.
struct ColorOptions {
  /// Brightness factor range around 1. Default: 0.2
  TORCH_ARG(double, brightness) = 0.2;
  /// Contrast factor range around 1. Default: 0.2
  TORCH_ARG(double, contrast) = 0.2;
  /// Saturation factor range around 1. Default: 0.2
  TORCH_ARG(double, saturation) = 0.2;
  /// Hue shift range, as a fraction of a full turn (0.5 = 180 degrees). Default: 0.05
  TORCH_ARG(double, hue) = 0.05;
};

ColorOptions read_options(Params& params) {
  ColorOptions o;
  o.brightness(params.get_float("brightness", o.brightness(), {0.0, 1.0}));
  o.contrast(params.get_float("contrast", o.contrast(), {0.0, 1.0}));
  o.saturation(params.get_float("saturation", o.saturation(), {0.0, 1.0}));
  o.hue(params.get_float("hue", o.hue(), {0.0, 0.5}));
  return o;
}

// ITU-R 601 luma, the weights torchvision's rgb_to_grayscale uses.
torch::Tensor grey(const torch::Tensor& rgb) {
  return (0.299 * rgb.select(1, 0) + 0.587 * rgb.select(1, 1) + 0.114 * rgb.select(1, 2)).unsqueeze(1);
}

class Color : public bachlab::sdk::Augmentation {
 public:
  explicit Color(ColorOptions options) : options_(std::move(options)) {
    // NTSC RGB -> YIQ; its inverse is computed rather than typed so the two match exactly.
    to_yiq_ = torch::tensor({0.299, 0.587, 0.114, 0.596, -0.274, -0.322, 0.211, -0.523, 0.312}, torch::kDouble)
                  .view({3, 3});
    from_yiq_ = torch::inverse(to_yiq_);
  }

  torch::Tensor apply(const torch::Tensor& batch, torch::Generator& generator) const override {
    check_batch(batch, "color", 3);
    check_unit_range(batch, "color");
    const int64_t n = batch.size(0);
    auto range = [&](double r) { return uniform(generator, {n}, 1.0 - r, 1.0 + r, batch).view({n, 1, 1, 1}); };
    // Every draw happens whatever the ranges, so one setting never shifts another's draws.
    auto b = range(options_.brightness());
    auto c = range(options_.contrast());
    auto s = range(options_.saturation());
    auto h = uniform(generator, {n}, -options_.hue(), options_.hue(), batch);

    torch::Tensor out = batch;
    if (options_.brightness() > 0) out = (out * b).clamp(0, 1);
    if (options_.contrast() > 0) {
      auto mean = grey(out).mean({1, 2, 3}, /*keepdim=*/true);
      out = (c * out + (1 - c) * mean).clamp(0, 1);
    }
    if (options_.saturation() > 0) out = (s * out + (1 - s) * grey(out)).clamp(0, 1);
    if (options_.hue() > 0) {
      // Per image: back from YIQ . rotate I and Q by the angle . to YIQ.
      auto angle = (h.to(torch::kDouble) * (2 * kPi)).cpu();
      auto zero = torch::zeros_like(angle), one = torch::ones_like(angle);
      auto rotation = torch::stack({one, zero, zero, zero, angle.cos(), -angle.sin(), zero, angle.sin(), angle.cos()}, 1)
                          .view({n, 3, 3});
      auto matrix = torch::matmul(from_yiq_, torch::matmul(rotation, to_yiq_)).to(batch.options());
      out = torch::einsum("nij,njhw->nihw", {matrix, out}).clamp(0, 1);
    }
    return out.is_same(batch) ? batch.clone() : out;
  }

 private:
  ColorOptions options_;
  torch::Tensor to_yiq_;
  torch::Tensor from_yiq_;
};

class ColorPlugin : public bachlab::sdk::AugmentationPlugin {
 public:
  std::shared_ptr<bachlab::sdk::Augmentation> create(Params& params) const override {
    auto options = read_options(params);
    params.check();
    return std::make_shared<Color>(options);
  }
};

}  // namespace

BACHLAB_PLUGIN(augmentation, "color", "1.0.0", "Random brightness, contrast, saturation and hue", ColorPlugin)
