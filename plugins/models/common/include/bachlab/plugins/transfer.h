#pragma once
/// \file transfer.h
/// Building blocks for the in-tree transfer-learning model plugins: a torchvision backbone
/// (resnet50, vgg16) or any frozen extractor, with a dense head on top. It reads a
/// torchvision state_dict with every key and shape checked (one message listing what is
/// missing, unexpected and mis-shaped), applies ImageNet normalisation, builds the study's
/// dense head, holds the frozen / finetune machinery (parameter groups, batch norms kept in
/// eval mode) and gives the weights file's identity for the host's feature cache
/// (sdk::FrozenFeatures::features_cache_key). The resnet50, vgg16 and torchscript plugins
/// in plugins/models/ are built on it; docs/transfer.md describes the settings it reads.
///
/// Typical use in a plugin's create() (the whole of it: plugins/models/resnet50/resnet50.cpp):
///
///   using namespace bachlab::plugins::transfer;
///   // MyNet derives from TorchvisionNetwork: backbone(), pool(), imagenet_top(),
///   // head_parameters(), and calls finish_setup(identity) once its weights are in.
///   BackboneOptions o = read_backbone_options(params, spec, "mynet", blocks, default_blocks,
///                                             {"avg", "max"}, HeadOptions());
///   params.check();
///   auto network = std::make_shared<MyNet>(spec, o);
///   std::string identity;
///   if (o.pretrained())
///     identity = load_backbone_weights(params, o, "mynet", network->expected_tensors(), "fc.", false);
///
/// Not part of the SDK: it names this repository's export script
/// (scripts/export_torchvision.py) and its weight-file naming ("..._seed7.pt",
/// "..._notop.pt"), and its option structs grow with the plugins. It is the static library
/// bachlab_model_common (plugins/models/common/), linked into each plugin that uses it, so
/// none of that is part of the plugin ABI.
#include <bachlab/sdk/error.h>
#include <bachlab/sdk/model.h>
#include <bachlab/sdk/params.h>

#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace bachlab::plugins::transfer {

using sdk::InputNeeds;
using sdk::ModelSpec;
using sdk::Network;
using sdk::ParameterGroup;
using sdk::Params;

/// What trains: the head on a fixed backbone (whose features can be cached), or the head
/// and the backbone's last blocks.
enum class Mode { frozen, finetune };
/// The head on the pooled features: the study's dense head, or torchvision's own
/// 1000-class ImageNet classifier.
enum class Head { study, imagenet };
/// What a torchvision backbone needs of its input (vgg16 raises min_side to 32).
inline const InputNeeds kImageNetInput = {3, 1, "check [data] image_size (224 is what ImageNet weights were trained at)"};

std::string shape_text(c10::IntArrayRef sizes);

std::string in_quotes(const std::string& text);

// ---------------------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------------------

// The statistics torchvision's and Keras' ImageNet weights were trained with. Applied
// inside the network on [0,1] input, so the data config keeps normalize = "unit" and the
// feature cache (which sees [0,1] batches) needs no knowledge of it.
torch::Tensor imagenet_normalize(const torch::Tensor& images);


// ---------------------------------------------------------------------------------------
// Weights files
// ---------------------------------------------------------------------------------------

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

/// "<absolute path> <size> bytes <content hash>": what the feature cache key holds.
std::string content_identity(const std::string& path, const std::vector<char>& bytes);

/// Reads a whole file; false if it cannot be opened.
bool read_bytes(const std::string& path, std::vector<char>& bytes);

/// The random seed a weights file's name asks for ("resnet50_seed7.pt": 7), or -1. The
/// quick configs name seeded random exports so; any other name means ImageNet weights.
int64_t seed_in_file_name(const std::string& output);

/// The command (run from the checkout) that writes the weights file `output` names: seeded
/// random weights for a "..._seed<N>..." name, else ImageNet's; without the classifier for
/// a "...notop..." name, as the configs name VGG16's top-less files.
std::string export_command(const std::string& model, const std::string& output);

/// How to get the missing weights file `output`, phrased to follow "cannot be opened (...); ".
std::string how_to_export(const std::string& model, const std::string& output);

// In words that do not change between LibTorch versions (tagKind() says IntList in one,
// GenericList in another).
std::string value_kind(const c10::IValue& value);

/// Reads a state_dict written by torch.save(dict) (what scripts/export_torchvision.py
/// writes). Returns "" and fills `out` and `identity` (see content_identity), or the reason
/// it cannot, phrased to follow `weights "<file>" `.
std::string read_weights_file(const std::string& path, const std::string& model, NamedTensors& out,
                              std::string& identity);

/// One tensor a weights file must provide. `target` is copied into; undefined for
/// tensors that are only checked (torchvision's classifier when the study's head is used).
struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
  torch::Tensor target;
};

/// Checks every key and shape of `file` against `expected` and, only if all fit, copies
/// them. Tensors named with `top_prefix` (torchvision's ImageNet classifier) may be left
/// out as a whole unless `top_required`, as Keras' "notop" files do; a partial top is
/// still an error. Returns "" or the full list of problems, phrased to follow
/// `weights "<file>" `.
std::string load_checked(const NamedTensors& file, const std::vector<ExpectedTensor>& expected,
                         const std::string& top_prefix, bool top_required, const std::string& model);

/// Every parameter and buffer of `module`, named as its parent sees them (`prefix`.name).
void expect_all(torch::nn::Module& module, const std::string& prefix, std::vector<ExpectedTensor>& out,
                bool copy = true);

// ---------------------------------------------------------------------------------------
// Heads
// ---------------------------------------------------------------------------------------

/// The study's head on top of the pooled features: one dense hidden layer (ReLU), then
/// optionally batch normalisation (ResNet50), dropout, and the class logits. Keras'
/// Dense(activation="relu") applies ReLU before a following BatchNormalization, so the
/// order here is dense -> ReLU -> BN -> dropout -> dense.
struct HeadOptions {
  /// Units of the dense hidden layer. Default: 256
  TORCH_ARG(int64_t, hidden_units) = 256;
  /// Dropout rate after it (0 removes the layer). Default: 0.5
  TORCH_ARG(double, dropout) = 0.5;
  /// Batch normalisation after the hidden layer. Default: per model
  TORCH_ARG(bool, batch_norm) = false;
  /// L2 penalty l2 * sum(w^2) on the hidden layer's kernel, as Keras' l2(). Default: per model
  TORCH_ARG(double, l2) = 0.0;
};

inline const std::vector<std::string> kHeadKeys = {"hidden_units", "dropout", "batch_norm", "l2"};

HeadOptions read_head_options(Params& params, HeadOptions o);

class StudyHeadImpl : public torch::nn::Module {
 public:
  StudyHeadImpl(int64_t features, int64_t classes, const HeadOptions& o);
  torch::Tensor forward(torch::Tensor x);
  /// l2 * sum(w^2) of the hidden layer's kernel; undefined when l2 is 0.
  torch::Tensor regularization();

 private:
  double l2_;
  torch::nn::Linear hidden_{nullptr};
  torch::nn::BatchNorm1d batch_norm_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::Linear out_{nullptr};
};
TORCH_MODULE(StudyHead);

// ---------------------------------------------------------------------------------------
// Backbone settings shared by resnet50 and vgg16
// ---------------------------------------------------------------------------------------

/// What a torchvision backbone plugin reads from [model], beyond the head's own keys.
struct BackboneOptions {
  /// The state_dict file (relative to the config). Required when pretrained.
  TORCH_ARG(std::string, weights) = "";
  /// Start from `weights`; false trains the whole network from torchvision's random
  /// initialisation. Default: true
  TORCH_ARG(bool, pretrained) = true;
  /// "frozen" (backbone fixed, features cacheable) or "finetune". Default: "frozen"
  TORCH_ARG(Mode, mode) = Mode::frozen;
  /// finetune: blocks trained, counted from the output end. Default: per model; all
  /// blocks when not pretrained
  TORCH_ARG(int64_t, trainable_blocks) = 0;
  /// finetune: learning-rate multiplier of the unfrozen backbone blocks. Default: 0.1
  /// (1 when not pretrained)
  TORCH_ARG(double, backbone_lr_scale) = 0.1;
  /// finetune: batch norm in unfrozen blocks updates its statistics (true) or keeps the
  /// ImageNet ones in eval mode (false, Keras' fine-tuning advice). Default: false
  TORCH_ARG(bool, train_batch_norm) = false;
  /// "study" (the study's dense head) or "imagenet" (torchvision's own 1000-class top).
  /// Default: "study"
  TORCH_ARG(Head, head) = Head::study;
  /// How the last feature map becomes a vector. Default: per model
  TORCH_ARG(std::string, pooling) = "avg";
  /// Apply ImageNet mean/std to the [0,1] input inside the network. Default: true
  TORCH_ARG(bool, imagenet_normalize) = true;

 public:
  /// The study head's settings (head = "study").
  HeadOptions head_options;
};

/// Reads and cross-checks the backbone keys; every problem is recorded in `params`.
/// `model` is the plugin name, `blocks` its number of blocks, `default_blocks` the
/// finetune default, `poolings` the valid pooling values (the first is torchvision's).
BackboneOptions read_backbone_options(Params& params, const ModelSpec& spec, const std::string& model,
                                      int64_t blocks, int64_t default_blocks, const std::vector<std::string>& poolings,
                                      HeadOptions head_defaults);

void set_trainable(torch::nn::Module& module, bool trainable);

void hold_batch_norm_in_eval(torch::nn::Module& module);

/// The torchvision backbones: registered children named as torchvision names them,
/// split into blocks (input end first) that freeze and unfreeze as units. In mode
/// "frozen" the network is its own sdk::FrozenFeatures, so the host can cache the pooled
/// backbone features and train the head alone.
class TorchvisionNetwork : public Network, public sdk::FrozenFeatures {
 public:
  torch::Tensor forward(torch::Tensor images) override;
  sdk::FrozenFeatures* frozen_features() override { return frozen() ? this : nullptr; }
  torch::Tensor extract_features(torch::Tensor images) override { return features_of(images); }
  torch::Tensor head(torch::Tensor features) override;
  torch::Tensor regularization() override;
  std::vector<ParameterGroup> parameter_groups() override;
  std::string features_cache_key() const override;
  // Module::train() reaches every child; frozen blocks (and, unless train_batch_norm,
  // every batch norm of the backbone) go straight back to eval mode so that their
  // statistics stay ImageNet's and frozen weights stay bit-identical.
  void train(bool on = true) override;

 protected:
  TorchvisionNetwork(std::string model, BackboneOptions options) : model_(std::move(model)), options_(std::move(options)) {}

  /// The backbone's feature map for a normalised batch.
  virtual torch::Tensor backbone(torch::Tensor x) = 0;
  /// Feature map -> (N, F) vector per options_.pooling().
  virtual torch::Tensor pool(torch::Tensor map) = 0;
  /// torchvision's ImageNet classifier (head = "imagenet").
  virtual torch::Tensor imagenet_top(torch::Tensor features) = 0;
  /// Parameters of whichever head is in use.
  virtual std::vector<torch::Tensor> head_parameters() = 0;

  bool frozen() const { return options_.mode() == Mode::frozen; }
  int64_t trained_blocks() const { return frozen() ? 0 : options_.trainable_blocks(); }

  /// The pooled backbone features of a [0,1] batch.
  torch::Tensor features_of(torch::Tensor images);


  /// Called by the subclass constructor once its modules exist: applies the mode.
  void finish_setup(const std::string& weights_identity);


  std::string model_;
  BackboneOptions options_;
  /// Backbone modules per block, input end first.
  std::vector<std::vector<torch::nn::Module*>> blocks_;
  StudyHead study_head_{nullptr};
  std::string weights_identity_;
};

/// Loads options.weights() into the network's backbone (and top, if it has one). Every
/// problem goes to params as an error on the weights key.
/// Returns the file's content_identity.
std::string load_backbone_weights(Params& params, const BackboneOptions& options, const std::string& model,
                                  const std::vector<ExpectedTensor>& expected, const std::string& top_prefix,
                                  bool top_required);

}  // namespace bachlab::plugins::transfer
