// VGG16 (Simonyan & Zisserman, 2015; configuration "D", no batch norm) as torchvision
// builds it, with torchvision's names (features.0.weight ... features.28.bias,
// classifier.0/3/6), so that a state_dict exported from torchvision loads exactly.
//
// The study's transfer model: ImageNet VGG16 without its classifier (Keras'
// include_top=False), flattened, one dense hidden layer with L2 regularisation, dropout,
// the logits; its config turns augmentation on. Sizes are not in the study; ours: 256
// units, Keras' default l2(0.01), dropout 0.5. "flatten" pooling is torchvision's 7x7
// adaptive average pooling then flatten: at 224x224 exactly Keras' Flatten() of the
// 7x7x512 block5_pool output (25088 features).
//
// Blocks for mode = "finetune": the five convolution blocks between max-poolings
// (Keras' block1 ... block5); the default 1 unfreezes block5, the classic VGG16 fine-tune.
#include <bachlab/plugins/transfer.h>

namespace {

using bachlab::sdk::ModelSpec;
using bachlab::sdk::Params;
using namespace bachlab::plugins::transfer;

constexpr int64_t kBlocks = 5;
constexpr int64_t kDefaultTrainableBlocks = 1;
const std::vector<std::string> kPoolings = {"flatten", "avg", "max"};
// Output channels of each convolution, block by block (torchvision's cfgs["D"]).
const std::vector<std::vector<int64_t>> kConfigD = {{64, 64}, {128, 128}, {256, 256, 256}, {512, 512, 512}, {512, 512, 512}};

class Vgg16 : public TorchvisionNetwork {
 public:
  Vgg16(const ModelSpec& spec, BackboneOptions options) : TorchvisionNetwork("vgg16", std::move(options)) {
    // One Sequential as torchvision has it, so layer indices (and names) match; blocks
    // are recorded as the index ranges each covers.
    torch::nn::Sequential features;
    int64_t channels = 3;
    std::vector<std::pair<size_t, size_t>> block_ranges;
    for (const auto& block : kConfigD) {
      const size_t begin = features->size();
      for (int64_t out : block) {
        features->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, out, 3).padding(1)));
        features->push_back(torch::nn::ReLU());
        channels = out;
      }
      features->push_back(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2).stride(2)));
      block_ranges.emplace_back(begin, features->size());
    }
    features_ = register_module("features", features);
    for (const auto& [begin, end] : block_ranges) {
      blocks_.emplace_back();
      for (size_t i = begin; i < end; ++i) blocks_.back().push_back(features_->ptr(i).get());
    }
    init_like_torchvision(*features_);
    const int64_t feature_count = options_.pooling() == "flatten" ? 512 * 7 * 7 : 512;
    if (options_.head() == Head::imagenet) {
      classifier_ = register_module("classifier", make_classifier(spec.num_classes));
      init_like_torchvision(*classifier_);
    } else {
      study_head_ = register_module("head", StudyHead(feature_count, spec.num_classes, options_.head_options));
    }
  }

  /// Every tensor a torchvision vgg16 state_dict holds; the classifier is only checked
  /// unless head = "imagenet" uses it (building a throwaway 120M-parameter classifier
  /// just for its shapes would cost half a gigabyte, so shapes are listed directly).
  std::vector<ExpectedTensor> expected_tensors() {
    std::vector<ExpectedTensor> out;
    expect_all(*features_, "features.", out);
    if (classifier_) {
      expect_all(*classifier_, "classifier.", out);
    } else {
      const std::vector<std::pair<std::string, std::vector<int64_t>>> top = {
          {"classifier.0.weight", {4096, 25088}}, {"classifier.0.bias", {4096}},
          {"classifier.3.weight", {4096, 4096}},  {"classifier.3.bias", {4096}},
          {"classifier.6.weight", {1000, 4096}},  {"classifier.6.bias", {1000}}};
      for (const auto& [name, shape] : top) out.push_back({name, shape, torch::Tensor()});
    }
    return out;
  }

  void finish(const std::string& weights_identity) { finish_setup(weights_identity); }

 protected:
  torch::Tensor backbone(torch::Tensor x) override { return features_->forward(x); }

  torch::Tensor pool(torch::Tensor map) override {
    if (options_.pooling() == "avg") return torch::flatten(torch::adaptive_avg_pool2d(map, {1, 1}), 1);
    if (options_.pooling() == "max") return torch::amax(map, {2, 3});
    return torch::flatten(torch::adaptive_avg_pool2d(map, {7, 7}), 1);
  }

  torch::Tensor imagenet_top(torch::Tensor features) override { return classifier_->forward(features); }

  std::vector<torch::Tensor> head_parameters() override {
    return study_head_ ? study_head_->parameters() : classifier_->parameters();
  }

 private:
  static torch::nn::Sequential make_classifier(int64_t classes) {
    return torch::nn::Sequential(torch::nn::Linear(512 * 7 * 7, 4096), torch::nn::ReLU(), torch::nn::Dropout(0.5),
                                 torch::nn::Linear(4096, 4096), torch::nn::ReLU(), torch::nn::Dropout(0.5),
                                 torch::nn::Linear(4096, classes));
  }

  // torchvision's VGG initialisation, so that pretrained = false starts as torchvision's
  // own from-scratch training does.
  static void init_like_torchvision(torch::nn::Module& root) {
    torch::NoGradGuard no_grad;
    for (const auto& module : root.modules()) {
      if (auto* conv = module->as<torch::nn::Conv2d>()) {
        torch::nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
        torch::nn::init::zeros_(conv->bias);
      } else if (auto* linear = module->as<torch::nn::Linear>()) {
        torch::nn::init::normal_(linear->weight, 0.0, 0.01);
        torch::nn::init::zeros_(linear->bias);
      }
    }
  }

  torch::nn::Sequential features_{nullptr};
  torch::nn::Sequential classifier_{nullptr};
};

class Vgg16Plugin : public bachlab::sdk::ModelPlugin {
 public:
  std::shared_ptr<bachlab::sdk::Network> create(const ModelSpec& spec, Params& params) const override {
    BackboneOptions options = read_backbone_options(params, spec, "vgg16", kBlocks, kDefaultTrainableBlocks,
                                                    kPoolings, HeadOptions().batch_norm(false).l2(0.01));
    params.check();
    // Five 2x2 max-poolings need at least 32 pixels to leave one.
    check_spec(spec, "vgg16", {3, 32, kImageNetInput.advice});
    auto network = std::make_shared<Vgg16>(spec, options);
    std::string identity;
    if (options.pretrained()) {
      identity = load_backbone_weights(params, options, "vgg16", network->expected_tensors(), "classifier.",
                            options.head() == Head::imagenet);
      params.check();
    }
    network->finish(identity);
    return network;
  }
};

}  // namespace

BACHLAB_PLUGIN(model, "vgg16", "1.0.0",
               "VGG16 (torchvision weights) with the study's L2-regularised dense head; frozen or fine-tuned",
               Vgg16Plugin)
