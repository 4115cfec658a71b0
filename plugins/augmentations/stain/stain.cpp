// H&E stain jitter (Tellez et al. 2018, "HED" augmentation): each image is split by
// Ruifrok & Johnston's colour deconvolution into haematoxylin, eosin and DAB optical
// densities, each channel s becomes alpha * s + beta with alpha ~ U(1 - scale, 1 + scale)
// and beta ~ U(-shift, shift) drawn per image and channel, and the result is recombined
// to RGB. Defaults are Tellez's "HED-light" (0.05 and 0.05).
//
// The stain matrix is scikit-image's rgb_from_hed; optical density is -ln(max(x, 1e-6))
// as in scikit-image before 0.19 (the version Tellez used: no division by ln(1e-6)), so
// shift is in natural optical-density units. Unlike rgb2hed, negative stain amounts are
// kept rather than clipped, so zero jitter gives back the input (to float precision,
// and pixels below 1e-6 as 1e-6). Deconvolution, jitter and recombination are one 3x3
// matrix and offset per image, applied to the whole batch at once.
#include <bachlab/sdk/augmentation.h>
#include <bachlab/sdk/batch_ops.h>

#include <cmath>
#include <memory>
#include <string>

namespace {

using bachlab::sdk::check_batch;
using bachlab::sdk::check_unit_range;
using bachlab::sdk::uniform;
using bachlab::sdk::Params;

/// The stain jitter's settings, as read from its [[augment]] table.
struct StainOptions {
  /// Each stain's amount is multiplied by U(1 - scale, 1 + scale). Default: 0.05
  TORCH_ARG(double, scale) = 0.05;
  /// Then U(-shift, shift) optical density is added to it. Default: 0.05
  TORCH_ARG(double, shift) = 0.05;
};

StainOptions read_options(Params& params) {
  StainOptions o;
  o.scale(params.get_float("scale", o.scale(), {0.0, 1.0}));
  o.shift(params.get_float("shift", o.shift(), {0.0, 1.0}));
  return o;
}

class Stain : public bachlab::sdk::Augmentation {
 public:
  explicit Stain(StainOptions options) : options_(std::move(options)) {
    // Rows: the RGB optical density of one unit of haematoxylin, eosin, DAB.
    rgb_from_hed_ = torch::tensor({0.65, 0.70, 0.29, 0.07, 0.99, 0.11, 0.27, 0.57, 0.78}, torch::kDouble).view({3, 3});
    hed_from_rgb_ = torch::inverse(rgb_from_hed_);
  }

  torch::Tensor apply(const torch::Tensor& batch, torch::Generator& generator) const override {
    check_batch(batch, "stain", 3);
    check_unit_range(batch, "stain");
    const int64_t n = batch.size(0);
    auto alpha = uniform(generator, {n, 3}, 1.0 - options_.scale(), 1.0 + options_.scale(), batch)
                     .to(torch::kDouble).cpu();
    auto beta = uniform(generator, {n, 3}, -options_.shift(), options_.shift(), batch).to(torch::kDouble).cpu();
    // With row vectors, stains = od . H and od' = (stains * alpha + beta) . R, where H is
    // hed_from_rgb and R rgb_from_hed. So per image od' = od . (H diag(alpha) R) + beta . R,
    // written for column (channel-first) pixels as matrix . od + offset.
    auto mixed = torch::matmul(hed_from_rgb_ * alpha.unsqueeze(1), rgb_from_hed_);  // (n, 3, 3): H diag(alpha) R
    auto matrix = mixed.transpose(1, 2).to(batch.options());
    auto offset = torch::matmul(beta, rgb_from_hed_).to(batch.options()).view({n, 3, 1, 1});
    auto density = -batch.clamp_min(1e-6).log();
    auto jittered = torch::einsum("ncd,ndhw->nchw", {matrix, density}) + offset;
    return (-jittered).exp().clamp(0, 1);
  }

 private:
  StainOptions options_;
  torch::Tensor rgb_from_hed_;
  torch::Tensor hed_from_rgb_;
};

class StainPlugin : public bachlab::sdk::AugmentationPlugin {
 public:
  std::shared_ptr<bachlab::sdk::Augmentation> create(Params& params) const override {
    auto options = read_options(params);
    params.check();
    return std::make_shared<Stain>(options);
  }
};

}  // namespace

BACHLAB_PLUGIN(augmentation, "stain", "1.0.0", "H&E stain jitter in haematoxylin-eosin-DAB space (Tellez 2018)",
               StainPlugin)
