// Random rotation, zoom and shift, as Keras' ImageDataGenerator offered them
// (rotation_range, zoom_range, width_shift_range, height_shift_range, fill_mode, cval),
// done for the whole batch at once with affine_grid + grid_sample.
//
// As in Keras: the angle is drawn from U(-rotation, rotation) degrees; the zoom factors
// of x and y independently from U(1 - zoom, 1 + zoom) (keep_aspect draws one for both),
// a factor above 1 showing a larger area (zooming out); shifts from U(-shift, shift)
// times the width or height. Sampling is bilinear, Keras' order-1 spline. Fill modes map
// to grid_sample's padding: "reflect" -> reflection (Keras' and scipy's "reflect", the
// edge pixel repeated once), "nearest" -> border, "constant" -> cval.
#include <bachlab/sdk/augmentation.h>
#include <bachlab/sdk/batch_ops.h>

#include <cmath>
#include <memory>
#include <string>

namespace {

using bachlab::sdk::check_batch;
using bachlab::sdk::uniform;
using bachlab::sdk::Params;

constexpr double kPi = 3.14159265358979323846;

const std::vector<std::string> kFills = {"reflect", "nearest", "constant"};
const std::vector<std::string> kInterpolations = {"bilinear", "nearest"};

/// The affine transform's settings, as read from its [[augment]] table.
struct AffineOptions {
  /// Largest rotation in degrees, either way. Default: 0 (Keras' default)
  TORCH_ARG(double, rotation) = 0.0;
  /// Zoom factors are drawn from [1 - zoom, 1 + zoom]. Default: 0
  TORCH_ARG(double, zoom) = 0.0;
  /// One zoom factor for both axes instead of Keras' two. Default: false
  TORCH_ARG(bool, keep_aspect) = false;
  /// Largest horizontal shift as a fraction of the width. Default: 0
  TORCH_ARG(double, width_shift) = 0.0;
  /// Largest vertical shift as a fraction of the height. Default: 0
  TORCH_ARG(double, height_shift) = 0.0;
  /// How points outside the image are filled: "reflect", "nearest" or "constant". Default: "reflect"
  TORCH_ARG(std::string, fill) = "reflect";
  /// The value used by fill "constant". Default: 0
  TORCH_ARG(double, cval) = 0.0;
  /// "bilinear" or "nearest". Default: "bilinear"
  TORCH_ARG(std::string, interpolation) = "bilinear";
};

AffineOptions read_options(Params& params) {
  AffineOptions o;
  o.rotation(params.get_float("rotation", o.rotation(), {0.0, 180.0}));
  o.zoom(params.get_float("zoom", o.zoom(), {0.0, 0.99}));
  o.keep_aspect(params.get_bool("keep_aspect", o.keep_aspect()));
  o.width_shift(params.get_float("width_shift", o.width_shift(), {0.0, 1.0}));
  o.height_shift(params.get_float("height_shift", o.height_shift(), {0.0, 1.0}));
  o.fill(params.get_string("fill", o.fill(), kFills));
  o.cval(params.get_float("cval", o.cval()));
  o.interpolation(params.get_string("interpolation", o.interpolation(), kInterpolations));
  if (params.has("cval") && o.fill() != "constant")
    params.fail("cval", "is only used with fill \"constant\" (fill is \"" + o.fill() +
                            "\"); remove cval or set fill = \"constant\"");
  return o;
}

class Affine : public bachlab::sdk::Augmentation {
 public:
  explicit Affine(AffineOptions options) : options_(std::move(options)) {
    namespace F = torch::nn::functional;
    sample_.align_corners(false);
    if (options_.interpolation() == "nearest") {
      sample_.mode(torch::kNearest);
    } else {
      sample_.mode(torch::kBilinear);
    }
    if (options_.fill() == "nearest") {
      sample_.padding_mode(torch::kBorder);
    } else if (options_.fill() == "constant") {
      sample_.padding_mode(torch::kZeros);
    } else {
      sample_.padding_mode(torch::kReflection);
    }
  }

  torch::Tensor apply(const torch::Tensor& batch, torch::Generator& generator) const override {
    namespace F = torch::nn::functional;
    check_batch(batch, "affine");
    const int64_t n = batch.size(0);
    if (n == 0) return batch.clone();
    const double height = static_cast<double>(batch.size(2)), width = static_cast<double>(batch.size(3));
    // Every draw happens whatever the ranges, so one setting never shifts another's draws.
    auto angle = uniform(generator, {n}, -options_.rotation(), options_.rotation(), batch) * (kPi / 180.0);
    auto zoom = uniform(generator, {n, 2}, 1.0 - options_.zoom(), 1.0 + options_.zoom(), batch);
    auto shift_x = uniform(generator, {n}, -options_.width_shift(), options_.width_shift(), batch);
    auto shift_y = uniform(generator, {n}, -options_.height_shift(), options_.height_shift(), batch);
    auto zoom_x = zoom.select(1, 0);
    auto zoom_y = options_.keep_aspect() ? zoom_x : zoom.select(1, 1);
    auto cos = angle.cos(), sin = angle.sin();
    // theta maps output to input points in coordinates normalised to [-1, 1] per axis; a
    // rotation in pixels therefore picks up the aspect ratio off the diagonal, and a shift
    // of a fraction f of the size is 2f.
    auto theta = torch::stack({cos * zoom_x, -sin * zoom_y * (height / width), 2 * shift_x,
                               sin * zoom_x * (width / height), cos * zoom_y, 2 * shift_y},
                              1)
                     .view({n, 2, 3});
    auto grid = F::affine_grid(theta, batch.sizes(), /*align_corners=*/false);
    // grid_sample fills with 0; shifting by cval first makes that fill cval, and is exact
    // because interpolation is linear.
    const double cval = options_.fill() == "constant" ? options_.cval() : 0.0;
    if (cval == 0.0) return F::grid_sample(batch, grid, sample_);
    return F::grid_sample(batch - cval, grid, sample_) + cval;
  }

 private:
  AffineOptions options_;
  torch::nn::functional::GridSampleFuncOptions sample_;
};

class AffinePlugin : public bachlab::sdk::AugmentationPlugin {
 public:
  std::shared_ptr<bachlab::sdk::Augmentation> create(Params& params) const override {
    auto options = read_options(params);
    params.check();
    return std::make_shared<Affine>(options);
  }
};

}  // namespace

BACHLAB_PLUGIN(augmentation, "affine", "1.0.0", "Random rotation, zoom and shift (Keras ImageDataGenerator style)",
               AffinePlugin)
