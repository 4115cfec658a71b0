// Random horizontal and/or vertical flips, each image and each direction drawn
// independently with probability p: Keras' ImageDataGenerator horizontal_flip and
// vertical_flip (which use p = 0.5). Histology has no canonical orientation, so both
// directions are label-preserving.
#include <bachlab/sdk/augmentation.h>
#include <bachlab/sdk/batch_ops.h>

#include <memory>
#include <string>

namespace {

using bachlab::sdk::check_batch;
using bachlab::sdk::uniform;
using bachlab::sdk::Params;

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
