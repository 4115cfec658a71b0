// Any TorchScript module as a frozen feature extractor, followed by the study's dense
// head: a new backbone (a timm model, another torchvision network, a user's own) needs no
// C++ at all, only an export (see docs/transfer.md):
//
//   model = timm.create_model("efficientnet_b0", pretrained=True, num_classes=0).eval()
//   torch.jit.save(torch.jit.script(model), "efficientnet_b0.ts")
//
// The module maps an (N, 3, H, W) float batch to features, either (N, F) already pooled
// or an (N, C, h, w) map that `pooling` reduces. It is never trained (it is not a
// torch::nn::Module, so its tensors are not even among the network's parameters), which
// is exactly what lets the host cache its features once per image.
#include <bachlab/plugins/transfer.h>

#include <torch/script.h>

#include <sstream>

namespace {

using bachlab::Error;
using bachlab::sdk::ModelSpec;
using bachlab::sdk::ParameterGroup;
using bachlab::sdk::Params;
using namespace bachlab::plugins::transfer;

const std::vector<std::string> kMapPoolings = {"avg", "max"};

// Always frozen: the module is a feature extractor this plugin never trains, so the
// network is its own FrozenFeatures.
class TorchScriptNetwork : public bachlab::sdk::Network, public bachlab::sdk::FrozenFeatures {
 public:
  TorchScriptNetwork(torch::jit::Module module, std::string file, std::string identity, std::string pooling,
                     bool normalize)
      : module_(std::move(module)),
        file_(std::move(file)),
        identity_(std::move(identity)),
        pooling_(std::move(pooling)),
        normalize_(normalize) {
    module_.eval();
  }

  /// Builds the head once the feature width is known (from a probe forward pass).
  void set_head(int64_t features, int64_t classes, const HeadOptions& options) {
    head_ = register_module("head", StudyHead(features, classes, options));
  }

  torch::Tensor forward(torch::Tensor images) override {
    torch::Tensor features;
    {
      torch::NoGradGuard no_grad;
      features = extract_features(images);
    }
    return head(features);
  }

  bachlab::sdk::FrozenFeatures* frozen_features() override { return this; }

  torch::Tensor extract_features(torch::Tensor images) override {
    c10::IValue output = run(images);
    if (std::string problem = output_problem(output); !problem.empty()) throw Error(in_quotes(file_) + " " + problem);
    return reduce(output.toTensor());
  }

  /// The module's raw output for a [0,1] batch.
  c10::IValue run(torch::Tensor images) {
    torch::NoGradGuard no_grad;
    if (normalize_) images = imagenet_normalize(images);
    return module_.forward({images});
  }

  torch::Tensor head(torch::Tensor features) override { return head_->forward(features); }

  torch::Tensor regularization() override { return head_->regularization(); }

  std::vector<ParameterGroup> parameter_groups() override { return {ParameterGroup{"head", head_->parameters(), true, 1.0}}; }

  std::string features_cache_key() const override {
    return "torchscript module " + identity_ + " pooling " + pooling_ + " normalize " + (normalize_ ? "imagenet" : "none");
  }

  /// The module's output as (N, F), or an error text naming what was found.
  static std::string output_problem(const c10::IValue& output) {
    if (!output.isTensor())
      return "returns " + std::string(output.tagKind()) + ", expected a tensor of features (N, F) or a feature map "
             "(N, C, h, w); export a module whose forward returns one tensor (timm: num_classes=0; torchvision: "
             "replace the classifier with torch.nn.Identity())";
    const auto dim = output.toTensor().dim();
    if (dim != 2 && dim != 4)
      return "returns a tensor of shape " + shape_text(output.toTensor().sizes()) +
             ", expected (N, F) features or an (N, C, h, w) feature map";
    return "";
  }

 private:
  torch::Tensor reduce(const torch::Tensor& t) const {
    if (t.dim() == 2) return t;
    if (pooling_ == "max") return torch::amax(t, {2, 3});
    return t.mean({2, 3});
  }

  torch::jit::Module module_;
  std::string file_;
  std::string identity_;
  std::string pooling_;
  bool normalize_;
  StudyHead head_{nullptr};
};

class TorchScriptPlugin : public bachlab::sdk::ModelPlugin {
 public:
  std::shared_ptr<bachlab::sdk::Network> create(const ModelSpec& spec, Params& params) const override {
    const std::string file = params.get_path("module", "");
    params.describe("module", "", "required");
    const std::string pooling = params.get_string("pooling", "avg", kMapPoolings);
    const bool normalize = params.get_bool("imagenet_normalize", true);
    const HeadOptions head = read_head_options(params, HeadOptions().batch_norm(false).l2(0.0));
    if (!params.has("module"))
      params.fail("module", "is required: the TorchScript feature extractor file, e.g. module = \"resnet50.ts\" "
                            "written by \"/usr/bin/python3 scripts/export_torchvision.py resnet50 --pretrained "
                            "--torchscript resnet50.ts\" or by torch.jit.save(torch.jit.script(model), path)");
    params.check();

    std::vector<char> bytes;
    if (!read_bytes(file, bytes)) {
      params.fail("module", in_quotes(file) + " cannot be opened (" +
                                (std::filesystem::exists(file) ? "permission denied" : "no such file") +
                                "); export one with \"/usr/bin/python3 scripts/export_torchvision.py resnet50 "
                                "--pretrained --torchscript <file>\" or torch.jit.save, and point module at it "
                                "(relative to this config)");
      params.check();
    }
    torch::jit::Module module;
    try {
      std::istringstream stream(std::string(bytes.begin(), bytes.end()));
      module = torch::jit::load(stream);
    } catch (const c10::Error& e) {
      params.fail("module", in_quotes(file) + " is not a TorchScript module LibTorch can load (" +
                                std::string(e.what_without_backtrace()) + "); write it with "
                                "torch.jit.save(torch.jit.script(model), path), or torch.jit.trace for models "
                                "that do not script");
      params.check();
    }
    auto network = std::make_shared<TorchScriptNetwork>(std::move(module), file, content_identity(file, bytes),
                                                        pooling, normalize);

    // One probe image tells the feature width and catches a module that does not fit the
    // data (wrong channel count, too small an input) now rather than mid-training.
    c10::IValue output;
    try {
      torch::NoGradGuard no_grad;
      torch::Tensor probe = torch::zeros({1, spec.channels, spec.height, spec.width});
      output = network->run(probe);
    } catch (const c10::Error& e) {
      params.fail("module", in_quotes(file) + " fails on a 1x3x" + std::to_string(spec.height) + "x" +
                                std::to_string(spec.width) + " input (" + std::string(e.what_without_backtrace()) +
                                "); check [data] image_size against the size the module was exported for");
      params.check();
    }
    if (std::string problem = TorchScriptNetwork::output_problem(output); !problem.empty()) {
      params.fail("module", in_quotes(file) + " " + problem);
      params.check();
    }
    // Pooling leaves C of a map's (N, C, h, w); (N, F) stays as it is.
    network->set_head(output.toTensor().size(1), spec.num_classes, head);
    return network;
  }
};

}  // namespace

BACHLAB_PLUGIN(model, "torchscript", "1.0.0",
               "Any TorchScript module as a frozen feature extractor, with the study's dense head", TorchScriptPlugin)
