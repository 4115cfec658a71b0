// Random rotations by multiples of 90 degrees, one angle per image drawn uniformly from
// `angles`. Exact (no interpolation), and label-preserving for histology, which has no
// canonical orientation. 90 and 270 degrees swap height and width, so for a non-square
// batch only 0 and 180 of the configured angles are used. Angles turn counter-clockwise
// as an image is displayed (torch::rot90 over dims (H, W), like numpy.rot90).
#include <bachlab/sdk/augmentation.h>
#include <bachlab/sdk/batch_ops.h>

#include <memory>
#include <string>
#include <algorithm>
#include <vector>

namespace {

using bachlab::sdk::check_batch;
using bachlab::sdk::Params;

/// The rotation's settings, as read from its [[augment]] table.
struct Rotate90Options {
  /// The angles to draw from, each a multiple of 90 in 0..270. Default: 0, 90, 180, 270
  TORCH_ARG(std::vector<int64_t>, angles) = {0, 90, 180, 270};
};

Rotate90Options read_options(Params& params) {
  Rotate90Options o;
  auto angles = params.get_int_list("angles", o.angles());
  bool valid = !angles.empty() && std::all_of(angles.begin(), angles.end(), [](int64_t a) {
    return a >= 0 && a <= 270 && a % 90 == 0;
  });
  std::vector<int64_t> sorted = angles;
  std::sort(sorted.begin(), sorted.end());
  if (!valid || std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    params.fail("angles", "must list distinct multiples of 90 in 0..270 (was " +
                              bachlab::sdk::to_string(bachlab::sdk::Value(std::vector<bachlab::sdk::Scalar>(angles.begin(), angles.end()))) + "); use e.g. [0, 90, 180, 270]");
  } else {
    o.angles(angles);
  }
  return o;
}

class Rotate90 : public bachlab::sdk::Augmentation {
 public:
  explicit Rotate90(Rotate90Options options) : options_(std::move(options)) {}

  torch::Tensor apply(const torch::Tensor& batch, torch::Generator& generator) const override {
    check_batch(batch, "rotate90");
    const int64_t n = batch.size(0), height = batch.size(2), width = batch.size(3);
    std::vector<int64_t> turns;
    for (int64_t angle : options_.angles())
      if (height == width || angle % 180 == 0) turns.push_back(angle / 90);
    if (turns.empty())
      throw bachlab::Error("augmentation \"rotate90\": angles " + list(options_.angles()) + " would turn a " +
                           std::to_string(width) + "x" + std::to_string(height) +
                           " batch on its side, which changes its shape; add 0 or 180 to angles or use a square "
                           "image_size");
    auto pick = torch::randint(static_cast<int64_t>(turns.size()), {n}, generator,
                               torch::TensorOptions().dtype(torch::kLong).device(generator.device()));
    auto per_image = torch::tensor(turns, pick.options()).index_select(0, pick).to(batch.device());
    torch::Tensor out = batch.clone();
    // One batched rotation per distinct angle, over just the images that drew it.
    for (int64_t k = 1; k <= 3; ++k) {
      auto chosen = (per_image == k).nonzero().flatten();
      if (chosen.numel() == 0) continue;
      out.index_copy_(0, chosen, torch::rot90(batch.index_select(0, chosen), k, {2, 3}));
    }
    return out;
  }

 private:
  static std::string list(const std::vector<int64_t>& values) {
    std::string text;
    for (int64_t v : values) text += (text.empty() ? "" : ", ") + std::to_string(v);
    return "[" + text + "]";
  }

  Rotate90Options options_;
};

class Rotate90Plugin : public bachlab::sdk::AugmentationPlugin {
 public:
  std::shared_ptr<bachlab::sdk::Augmentation> create(Params& params) const override {
    auto options = read_options(params);
    params.check();
    return std::make_shared<Rotate90>(options);
  }
};

}  // namespace

BACHLAB_PLUGIN(augmentation, "rotate90", "1.0.0", "Random rotations by multiples of 90 degrees", Rotate90Plugin)
