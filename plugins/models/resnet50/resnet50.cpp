// ResNet50 (He et al., 2016) as torchvision builds it (v1.5: the stride sits on the 3x3
// convolution), with torchvision's parameter and buffer names, so that a state_dict
// exported from torchvision loads tensor for tensor and gives torchvision's logits.
//
// The study's transfer model: ImageNet ResNet50 without its classifier, global average
// pooling, then one dense hidden layer, batch normalisation and dropout (its sizes are not
// in the study; ours: 256 units, dropout 0.5), trained with Adam at 0.001.
//
// Blocks for mode = "finetune" (trainable_blocks counts from the output end): the 16
// bottleneck blocks layer4.2 ... layer1.0, then the stem (conv1, bn1): 17 in all. The
// default 3 unfreezes layer4, the last stage.
#include <bachlab/plugins/transfer.h>

namespace {

using bachlab::sdk::ModelSpec;
using bachlab::sdk::Params;
using namespace bachlab::plugins::transfer;

/// torchvision.models.resnet.Bottleneck.
class BottleneckImpl : public torch::nn::Module {
 public:
  BottleneckImpl(int64_t in_channels, int64_t planes, int64_t stride) {
    const int64_t out_channels = planes * 4;
    auto conv = [](int64_t in, int64_t out, int64_t kernel, int64_t stride) {
      return torch::nn::Conv2d(
          torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
    };
    conv1 = register_module("conv1", conv(in_channels, planes, 1, 1));
    bn1 = register_module("bn1", torch::nn::BatchNorm2d(planes));
    conv2 = register_module("conv2", conv(planes, planes, 3, stride));
    bn2 = register_module("bn2", torch::nn::BatchNorm2d(planes));
    conv3 = register_module("conv3", conv(planes, out_channels, 1, 1));
    bn3 = register_module("bn3", torch::nn::BatchNorm2d(out_channels));
    if (stride != 1 || in_channels != out_channels) {
      downsample = register_module(
          "downsample", torch::nn::Sequential(conv(in_channels, out_channels, 1, stride),
                                              torch::nn::BatchNorm2d(out_channels)));
    }
  }

  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor out = torch::relu(bn1->forward(conv1->forward(x)));
    out = torch::relu(bn2->forward(conv2->forward(out)));
    out = bn3->forward(conv3->forward(out));
    out += downsample ? downsample->forward(x) : x;
    return torch::relu(out);
  }

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  torch::nn::Sequential downsample{nullptr};
};
TORCH_MODULE(Bottleneck);

constexpr int64_t kFeatures = 2048;
constexpr int64_t kBlocks = 17;
constexpr int64_t kDefaultTrainableBlocks = 3;
const std::vector<std::string> kPoolings = {"avg", "max"};

class ResNet50 : public TorchvisionNetwork {
 public:
  ResNet50(const ModelSpec& spec, BackboneOptions options) : TorchvisionNetwork("resnet50", std::move(options)) {
    conv1_ = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 64, 7).stride(2).padding(3).bias(false)));
    bn1_ = register_module("bn1", torch::nn::BatchNorm2d(64));
    blocks_.push_back({conv1_.get(), bn1_.get()});
    int64_t channels = 64;
    const int64_t depths[4] = {3, 4, 6, 3};
    for (int64_t stage = 0; stage < 4; ++stage) {
      torch::nn::Sequential layer;
      const int64_t planes = int64_t{64} << stage;
      for (int64_t i = 0; i < depths[stage]; ++i) {
        layer->push_back(Bottleneck(channels, planes, i == 0 && stage > 0 ? 2 : 1));
        channels = planes * 4;
      }
      layers_[stage] = register_module("layer" + std::to_string(stage + 1), layer);
      for (const auto& block : layer->children()) blocks_.push_back({block.get()});
    }
    init_like_torchvision();
    if (options_.head() == Head::imagenet) {
      fc_ = register_module("fc", torch::nn::Linear(kFeatures, spec.num_classes));
    } else {
      study_head_ = register_module("head", StudyHead(kFeatures, spec.num_classes, options_.head_options));
    }
  }

  /// Every tensor a torchvision resnet50 state_dict holds, fc included (checked only,
  /// unless head = "imagenet" puts it to use).
  std::vector<ExpectedTensor> expected_tensors() {
    std::vector<ExpectedTensor> out;
    expect_all(*conv1_, "conv1.", out);
    expect_all(*bn1_, "bn1.", out);
    for (int stage = 0; stage < 4; ++stage) expect_all(*layers_[stage], "layer" + std::to_string(stage + 1) + ".", out);
    if (fc_) {
      expect_all(*fc_, "fc.", out);
    } else {
      torch::nn::Linear top(kFeatures, 1000);
      expect_all(*top, "fc.", out, /*copy=*/false);
    }
    return out;
  }

  void finish(const std::string& weights_identity) { finish_setup(weights_identity); }

 protected:
  torch::Tensor backbone(torch::Tensor x) override {
    x = torch::relu(bn1_->forward(conv1_->forward(x)));
    x = torch::max_pool2d(x, 3, 2, 1);
    for (auto& layer : layers_) x = layer->forward(x);
    return x;
  }

  torch::Tensor pool(torch::Tensor map) override {
    if (options_.pooling() == "max") return torch::amax(map, {2, 3});
    return torch::flatten(torch::adaptive_avg_pool2d(map, {1, 1}), 1);
  }

  torch::Tensor imagenet_top(torch::Tensor features) override { return fc_->forward(features); }

  std::vector<torch::Tensor> head_parameters() override {
    return study_head_ ? study_head_->parameters() : fc_->parameters();
  }

 private:
  // torchvision's initialisation, so that pretrained = false starts where torchvision's
  // own from-scratch training starts (fc keeps LibTorch's default, which is PyTorch's).
  void init_like_torchvision() {
    torch::NoGradGuard no_grad;
    for (const auto& module : modules(/*include_self=*/false)) {
      if (auto* conv = module->as<torch::nn::Conv2d>()) {
        torch::nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
      } else if (auto* bn = module->as<torch::nn::BatchNorm2d>()) {
        torch::nn::init::ones_(bn->weight);
        torch::nn::init::zeros_(bn->bias);
      }
    }
  }

  torch::nn::Conv2d conv1_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr};
  torch::nn::Sequential layers_[4] = {torch::nn::Sequential{nullptr}, torch::nn::Sequential{nullptr},
                                      torch::nn::Sequential{nullptr}, torch::nn::Sequential{nullptr}};
  torch::nn::Linear fc_{nullptr};
};

class ResNet50Plugin : public bachlab::sdk::ModelPlugin {
 public:
  std::shared_ptr<bachlab::sdk::Network> create(const ModelSpec& spec, Params& params) const override {
    BackboneOptions options = read_backbone_options(params, spec, "resnet50", kBlocks, kDefaultTrainableBlocks,
                                                    kPoolings, HeadOptions().batch_norm(true).l2(0.0));
    params.check();
    check_spec(spec, "resnet50", kImageNetInput);
    auto network = std::make_shared<ResNet50>(spec, options);
    std::string identity;
    if (options.pretrained()) {
      identity = load_backbone_weights(params, options, "resnet50", network->expected_tensors(), "fc.",
                            options.head() == Head::imagenet);
      params.check();
    }
    network->finish(identity);
    return network;
  }
};

}  // namespace

BACHLAB_PLUGIN(model, "resnet50", "1.0.0",
               "ResNet50 (torchvision weights) with the study's dense head; frozen or fine-tuned", ResNet50Plugin)
