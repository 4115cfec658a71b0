// A small residual network made for patches, trained from scratch (not one of the study's
// models; see docs/models.md and configs/bach_best.toml). A 3x3 stem convolution, then one
// stage per entry of `widths`, each of `blocks` basic residual blocks (two 3x3
// convolutions with batch norm, He et al. 2016), every stage after the first halving the
// resolution; global average pooling, dropout and one linear layer give the logits.
//
// Why this shape for H&E patches on a CPU:
// - batch norm trains from scratch at lr 1e-3..1e-2 without the careful initialisation the
//   study's plain CNNs needed; residual blocks keep gradients flowing through the stages.
// - global average pooling instead of dense layers over the feature map: the weight count
//   does not grow with the patch size, and a patch's class is a texture (nuclei, glands)
//   that may sit anywhere in it, which averaging respects.
// - the stem's stride 2 and its max pooling (as ResNet's) quarter the resolution before the
//   first stage, which cuts the work of every later layer 16-fold: measured on two cores,
//   this is what makes a 5-fold BACH run fit its budget (configs/bach_best.toml). At 128 px
//   patches of half-scale photos a nucleus (7-12 px there) is then still 2-3 feature cells.
// Default: widths 32, 64, 128, 256, one block each: 1,227,428 weights for 4 classes.
#include <bachlab/sdk/model.h>

#include <memory>
#include <string>
#include <vector>

namespace {

namespace sdk = bachlab::sdk;
namespace nn = torch::nn;

/// patch_resnet's settings, as read from its [model] table.
struct PatchResnetOptions {
  /// Channels of each stage; one entry per stage. Default: 32, 64, 128, 256
  TORCH_ARG(std::vector<int64_t>, widths) = {32, 64, 128, 256};
  /// Residual blocks per stage. Default: 1
  TORCH_ARG(int64_t, blocks) = 1;
  /// Stride of the stem convolution (1 keeps full resolution, 2 halves it). Default: 2
  TORCH_ARG(int64_t, stem_stride) = 2;
  /// A 3x3 max pooling of stride 2 after the stem (as ResNet's), halving the resolution
  /// once more. Default: true
  TORCH_ARG(bool, stem_pool) = true;
  /// Dropout before the last linear layer (0 removes it). Default: 0
  TORCH_ARG(double, dropout) = 0.0;
};

PatchResnetOptions read_options(sdk::Params& params) {
  PatchResnetOptions o;
  o.widths(params.get_int_list("widths", o.widths(), {1, 2048}));
  if (o.widths().empty() || o.widths().size() > 6) {
    params.fail("widths", "must list 1 to 6 stage widths (was " + std::to_string(o.widths().size()) + ")");
    o.widths({32, 64, 128, 256});
  }
  o.blocks(params.get_int("blocks", o.blocks(), {1, 16}));
  o.stem_stride(params.get_int("stem_stride", o.stem_stride(), {1, 4}));
  o.stem_pool(params.get_bool("stem_pool", o.stem_pool()));
  o.dropout(params.get_float("dropout", o.dropout(), {0.0, 0.99}));
  return o;
}

nn::Conv2d conv3x3(int64_t in, int64_t out, int64_t stride) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false));
}

/// Two 3x3 convolutions with batch norm and a shortcut (a strided 1x1 convolution with
/// batch norm when the shape changes).
class BasicBlockImpl : public nn::Module {
 public:
  BasicBlockImpl(int64_t in, int64_t out, int64_t stride)
      : conv1_(register_module("conv1", conv3x3(in, out, stride))),
        bn1_(register_module("bn1", nn::BatchNorm2d(out))),
        conv2_(register_module("conv2", conv3x3(out, out, 1))),
        bn2_(register_module("bn2", nn::BatchNorm2d(out))) {
    if (stride != 1 || in != out) {
      shortcut_ = register_module(
          "shortcut", nn::Sequential(nn::Conv2d(nn::Conv2dOptions(in, out, 1).stride(stride).bias(false)),
                                     nn::BatchNorm2d(out)));
    }
  }

  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor y = torch::relu(bn1_->forward(conv1_->forward(x)));
    y = bn2_->forward(conv2_->forward(y));
    return torch::relu(y + (shortcut_.is_empty() ? x : shortcut_->forward(x)));
  }

 private:
  nn::Conv2d conv1_;
  nn::BatchNorm2d bn1_;
  nn::Conv2d conv2_;
  nn::BatchNorm2d bn2_;
  nn::Sequential shortcut_{nullptr};
};
TORCH_MODULE(BasicBlock);

class PatchResnet : public sdk::Network {
 public:
  PatchResnet(const sdk::ModelSpec& spec, const PatchResnetOptions& o)
      : stem_(register_module("stem", conv3x3(spec.channels, o.widths().front(), o.stem_stride()))),
        stem_bn_(register_module("stem_bn", nn::BatchNorm2d(o.widths().front()))),
        stem_pool_(o.stem_pool()),
        dropout_(register_module("dropout", nn::Dropout(o.dropout()))),
        out_(register_module("out", nn::Linear(o.widths().back(), spec.num_classes))) {
    int64_t in = o.widths().front();
    for (size_t s = 0; s < o.widths().size(); ++s) {
      for (int64_t b = 0; b < o.blocks(); ++b) {
        const int64_t stride = s > 0 && b == 0 ? 2 : 1;
        blocks_.push_back(register_module("stage" + std::to_string(s + 1) + "_block" + std::to_string(b + 1),
                                          BasicBlock(in, o.widths()[s], stride)));
        in = o.widths()[s];
      }
    }
    // He initialisation for the ReLU network (as torchvision's ResNet), unit batch norm.
    for (auto& module : modules(false)) {
      if (auto* conv = module->as<nn::Conv2d>()) {
        nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
      } else if (auto* bn = module->as<nn::BatchNorm2d>()) {
        nn::init::ones_(bn->weight);
        nn::init::zeros_(bn->bias);
      }
    }
  }

  torch::Tensor forward(torch::Tensor images) override {
    torch::Tensor x = torch::relu(stem_bn_->forward(stem_->forward(images)));
    if (stem_pool_) x = torch::max_pool2d(x, 3, 2, 1);
    for (auto& block : blocks_) x = block->forward(x);
    x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
    return out_->forward(dropout_->forward(x));
  }

 private:
  nn::Conv2d stem_;
  nn::BatchNorm2d stem_bn_;
  bool stem_pool_;
  std::vector<BasicBlock> blocks_;
  nn::Dropout dropout_;
  nn::Linear out_;
};

class PatchResnetPlugin : public sdk::ModelPlugin {
 public:
  std::shared_ptr<sdk::Network> create(const sdk::ModelSpec& spec, sdk::Params& params) const override {
    PatchResnetOptions options = read_options(params);
    params.check();
    return std::make_shared<PatchResnet>(spec, options);
  }
};

}  // namespace

BACHLAB_PLUGIN(model, "patch_resnet", "1.0.0",
               "Small from-scratch ResNet for patches: batch norm, residual stages, global average pooling",
               PatchResnetPlugin)
