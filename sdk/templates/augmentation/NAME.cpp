// @NAME@: an augmentation plugin (written by `bachlab new-plugin augmentation @NAME@`).
// Adds uniform noise in [-amount, amount] to every pixel of an image, each image chosen
// with probability p, then clamps to [0, 1] so the batch stays in the range the host's
// normalisation expects. Every random number comes from the host's generator, drawn for
// the whole batch at once, so a run is reproducible from its seed.
#include <bachlab/sdk/augmentation.h>
#include <bachlab/sdk/batch_ops.h>

#include <memory>

namespace {

/// The settings of its [[augment]] table, each with its default.
struct Options {
  /// Largest change of a pixel value. Default: 0.05
  double amount = 0.05;
  /// Probability that an image gets noise. Default: 0.5
  double p = 0.5;
};

Options read_options(bachlab::sdk::Params& params) {
  Options o;
  o.amount = params.get_float("amount", o.amount, {0.0, 1.0});
  o.p = params.get_float("p", o.p, {0.0, 1.0});
  params.check();
  return o;
}

class Noise : public bachlab::sdk::Augmentation {
 public:
  explicit Noise(Options options) : options_(options) {}

  torch::Tensor apply(const torch::Tensor& batch, torch::Generator& generator) const override {
    bachlab::sdk::check_batch(batch, "@NAME@");
    const int64_t n = batch.size(0);
    auto chosen = (bachlab::sdk::uniform(generator, {n}, 0, 1, batch) < options_.p).view({n, 1, 1, 1});
    auto noise = bachlab::sdk::uniform(generator, batch.sizes(), -options_.amount, options_.amount, batch);
    // A new tensor: the host's batch is never modified in place.
    return (batch + noise * chosen).clamp(0, 1);
  }

 private:
  Options options_;
};

class Plugin : public bachlab::sdk::AugmentationPlugin {
 public:
  std::shared_ptr<bachlab::sdk::Augmentation> create(bachlab::sdk::Params& params) const override {
    return std::make_shared<Noise>(read_options(params));
  }
};

}  // namespace

BACHLAB_PLUGIN(augmentation, "@NAME@", "0.1.0", "@NAME@: uniform pixel noise on a random share of images", Plugin)
