#pragma once
/// \file transfer.h
/// Building blocks for transfer-learning model plugins: a torchvision backbone
/// (resnet50, vgg16) or any frozen extractor, with a dense head on top. It reads a
/// torchvision state_dict with every key and shape checked (one message listing what is
/// missing, unexpected and mis-shaped), applies ImageNet normalisation, builds the study's
/// dense head, holds the frozen / finetune machinery (parameter groups, batch norms kept in
/// eval mode) and gives the weights file's identity for the host's feature cache
/// (Network::features_cache_key). The resnet50, vgg16 and torchscript plugins in
/// plugins/models/ are built on it; docs/transfer.md describes the settings it reads.
///
/// Typical use in a plugin's create() (the whole of it: plugins/models/resnet50/resnet50.cpp):
///
///   using namespace bachlab::sdk::transfer;
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
/// Everything is inline, so a plugin stays one self-contained .so.
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

namespace bachlab::sdk::transfer {

inline const std::vector<std::string> kModes = {"frozen", "finetune"};
inline const std::vector<std::string> kHeads = {"study", "imagenet"};

inline std::string shape_text(c10::IntArrayRef sizes) {
  std::string out = "[";
  for (size_t i = 0; i < sizes.size(); ++i) out += (i ? ", " : "") + std::to_string(sizes[i]);
  return out + "]";
}

inline std::string in_quotes(const std::string& text) { return "\"" + text + "\""; }

// ---------------------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------------------

// The statistics torchvision's and Keras' ImageNet weights were trained with. Applied
// inside the network on [0,1] input, so the data config keeps normalize = "unit" and the
// feature cache (which sees [0,1] batches) needs no knowledge of it.
inline torch::Tensor imagenet_normalize(const torch::Tensor& images) {
  static const torch::Tensor mean = torch::tensor({0.485f, 0.456f, 0.406f}).view({1, 3, 1, 1});
  static const torch::Tensor std = torch::tensor({0.229f, 0.224f, 0.225f}).view({1, 3, 1, 1});
  return (images - mean.to(images.device())) / std.to(images.device());
}

inline void check_rgb_spec(const ModelSpec& spec, const std::string& model, int64_t min_side) {
  if (spec.channels != 3 || spec.height < min_side || spec.width < min_side || spec.num_classes < 2)
    throw Error("model " + in_quotes(model) + ": expected 3-channel (RGB) images of at least " +
                std::to_string(min_side) + "x" + std::to_string(min_side) + " pixels and at least 2 classes, found " +
                std::to_string(spec.channels) + " channels, " + std::to_string(spec.width) + "x" +
                std::to_string(spec.height) + " pixels and " + std::to_string(spec.num_classes) +
                " classes; check [data] image_size (224 is what ImageNet weights were trained at)");
}

// ---------------------------------------------------------------------------------------
// Weights files
// ---------------------------------------------------------------------------------------

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

/// A 64-bit hash of raw bytes, eight at a time (FNV-1a byte by byte runs at a tenth of the
/// speed on large inputs). Identifies a weights file's content for the feature cache:
/// content rather than mtime, because the file is read whole anyway and a re-export within
/// one clock tick keeps size and mtime alike. Not cryptographic.
inline uint64_t hash_bytes(const void* bytes, size_t size) {
  const auto* data = static_cast<const unsigned char*>(bytes);
  uint64_t hash = 0x9E3779B97F4A7C15ULL ^ size;
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t word;
    std::memcpy(&word, data + i, 8);
    hash ^= word * 0xff51afd7ed558ccdULL;
    hash = ((hash << 31) | (hash >> 33)) * 0x9E3779B97F4A7C15ULL;
  }
  for (; i < size; ++i) hash = (hash ^ data[i]) * 0x100000001b3ULL;
  hash ^= hash >> 33;
  hash *= 0xc4ceb9fe1a85ec53ULL;
  return hash ^ (hash >> 33);
}

/// "<absolute path> <size> bytes <content hash>": what the feature cache key holds.
inline std::string content_identity(const std::string& path, const std::vector<char>& bytes) {
  std::error_code ec;
  const std::filesystem::path absolute = std::filesystem::absolute(path, ec);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash_bytes(bytes.data(), bytes.size())));
  return absolute.string() + " " + std::to_string(bytes.size()) + " bytes " + hex;
}

/// Reads a whole file; false if it cannot be opened.
inline bool read_bytes(const std::string& path, std::vector<char>& bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

/// The random seed a weights file's name asks for ("resnet50_seed7.pt": 7), or -1. The
/// quick configs name seeded random exports so; any other name means ImageNet weights.
inline int64_t seed_in_file_name(const std::string& output) {
  const std::string name = std::filesystem::path(output).filename().string();
  for (size_t at = name.find("seed"); at != std::string::npos; at = name.find("seed", at + 1)) {
    size_t end = at + 4;
    while (end < name.size() && name[end] >= '0' && name[end] <= '9') ++end;
    if (end > at + 4 && end - at - 4 <= 9) return std::stoll(name.substr(at + 4, end - at - 4));
  }
  return -1;
}

/// The command (run from the checkout) that writes the weights file `output` names: seeded
/// random weights for a "..._seed<N>..." name, else ImageNet's; without the classifier for
/// a "...notop..." name, as the configs name VGG16's top-less files.
inline std::string export_command(const std::string& model, const std::string& output) {
  const int64_t seed = seed_in_file_name(output);
  const bool notop = std::filesystem::path(output).filename().string().find("notop") != std::string::npos;
  return "/usr/bin/python3 scripts/export_torchvision.py " + model +
         (seed >= 0 ? " --random-seed " + std::to_string(seed) : std::string(" --pretrained")) +
         (notop ? " --notop" : "") + " -o " + output;
}

/// How to get the missing weights file `output`, phrased to follow "cannot be opened (...); ".
inline std::string how_to_export(const std::string& model, const std::string& output) {
  if (seed_in_file_name(output) >= 0)
    return "make these seeded random weights (no download) from the checkout with \"" + export_command(model, output) +
           "\", as `scripts/dev.sh setup` does for the quick configs";
  return "export ImageNet weights on a machine with internet with \"" + export_command(model, output) +
         "\" and copy the file there";
}

// In words that do not change between LibTorch versions (tagKind() says IntList in one,
// GenericList in another).
inline std::string value_kind(const c10::IValue& value) {
  if (value.isNone()) return "None";
  if (value.isTensor()) return "a single tensor";
  if (value.isList()) return "a list";
  if (value.isTuple()) return "a tuple";
  if (value.isString()) return "a string";
  if (value.isInt() || value.isDouble() || value.isBool()) return "a number";
  return "an object (" + std::string(value.tagKind()) + ")";
}

/// Reads a state_dict written by torch.save(dict) (what scripts/export_torchvision.py
/// writes). Returns "" and fills `out` and `identity` (see content_identity), or the reason
/// it cannot, phrased to follow `weights "<file>" `.
inline std::string read_weights_file(const std::string& path, const std::string& model, NamedTensors& out,
                              std::string& identity) {
  std::vector<char> bytes;
  if (!read_bytes(path, bytes))
    return "cannot be opened (" + std::string(std::filesystem::exists(path) ? "permission denied" : "no such file") +
           "); " + how_to_export(model, path) +
           "; or set pretrained = false and mode = \"finetune\" to train from scratch";
  identity = content_identity(path, bytes);
  const std::string rewrite = "; write it with scripts/export_torchvision.py, which saves torchvision's state_dict "
                              "as a plain dict {name: tensor} with torch.save";
  c10::IValue value;
  try {
    value = torch::pickle_load(bytes);
  } catch (const c10::Error& e) {
    return "is not a file LibTorch can read (" + std::string(e.what_without_backtrace()) + ")" + rewrite;
  }
  if (!value.isGenericDict())
    return "holds " + value_kind(value) +
           ", expected a dict {name: tensor} (an OrderedDict from model.state_dict() reads as None here)" + rewrite;
  for (const auto& item : value.toGenericDict()) {
    if (!item.key().isString() || !item.value().isTensor())
      return "holds an entry that is not a name and a tensor (" + value_kind(item.key()) + " -> " +
             value_kind(item.value()) + ")" + rewrite;
    out.emplace_back(item.key().toStringRef(), item.value().toTensor());
  }
  return "";
}

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
inline std::string load_checked(const NamedTensors& file, const std::vector<ExpectedTensor>& expected,
                         const std::string& top_prefix, bool top_required, const std::string& model) {
  std::map<std::string, const torch::Tensor*> given;
  bool has_top = false;
  for (const auto& [name, tensor] : file) {
    given[name] = &tensor;
    has_top = has_top || name.rfind(top_prefix, 0) == 0;
  }
  std::vector<std::string> missing, unexpected, wrong;
  std::set<std::string> known;
  for (const auto& e : expected) {
    known.insert(e.name);
    const bool top = e.name.rfind(top_prefix, 0) == 0;
    auto it = given.find(e.name);
    if (it == given.end()) {
      if (!top || top_required || has_top) missing.push_back(e.name + " " + shape_text(e.shape));
    } else if (it->second->sizes().vec() != e.shape) {
      wrong.push_back(e.name + ": expected " + shape_text(e.shape) + ", found " + shape_text(it->second->sizes()));
    }
  }
  for (const auto& [name, tensor] : file)
    if (!known.count(name)) unexpected.push_back(name + " " + shape_text(tensor.sizes()));

  if (missing.empty() && unexpected.empty() && wrong.empty()) {
    torch::NoGradGuard no_grad;
    for (const auto& e : expected)
      if (e.target.defined() && given.count(e.name)) e.target.copy_(*given.at(e.name));
    return "";
  }
  // Ten lines per kind are enough to recognise the mismatch (a resnet18 file, a timm
  // export, a renamed prefix) without burying the fix under hundreds of names.
  constexpr size_t kListed = 10;
  std::string counts, lines;
  auto list = [&](const std::vector<std::string>& items, const std::string& label, const std::string& count_label) {
    if (items.empty()) return;
    counts += (counts.empty() ? "" : ", ") + std::to_string(items.size()) + " " + count_label;
    for (size_t i = 0; i < items.size() && i < kListed; ++i) lines += "\n  " + label + " " + items[i];
    if (items.size() > kListed) lines += "\n  ... and " + std::to_string(items.size() - kListed) + " more " + count_label;
  };
  list(missing, "missing:    ", "missing");
  list(unexpected, "unexpected: ", "unexpected");
  list(wrong, "wrong shape:", "with the wrong shape");
  return "does not fit torchvision's " + model + " (" + counts + ")" + lines +
         "\nExport the file with scripts/export_torchvision.py " + model +
         " (it writes torchvision's names and shapes), or point weights at a " + model + " file";
}

/// Every parameter and buffer of `module`, named as its parent sees them (`prefix`.name).
inline void expect_all(torch::nn::Module& module, const std::string& prefix, std::vector<ExpectedTensor>& out,
                bool copy = true) {
  for (const auto& item : module.named_parameters())
    out.push_back({prefix + item.key(), item.value().sizes().vec(), copy ? item.value() : torch::Tensor()});
  for (const auto& item : module.named_buffers())
    out.push_back({prefix + item.key(), item.value().sizes().vec(), copy ? item.value() : torch::Tensor()});
}

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

inline HeadOptions read_head_options(Params& params, HeadOptions o) {
  o.hidden_units(params.get_int("hidden_units", o.hidden_units(), {1, 65536}));
  o.dropout(params.get_float("dropout", o.dropout(), {0.0, 0.99}));
  o.batch_norm(params.get_bool("batch_norm", o.batch_norm()));
  o.l2(params.get_float("l2", o.l2(), {0.0, 10.0}));
  return o;
}

class StudyHeadImpl : public torch::nn::Module {
 public:
  StudyHeadImpl(int64_t features, int64_t classes, const HeadOptions& o) : l2_(o.l2()) {
    hidden_ = register_module("hidden", torch::nn::Linear(features, o.hidden_units()));
    if (o.batch_norm()) batch_norm_ = register_module("batch_norm", torch::nn::BatchNorm1d(o.hidden_units()));
    if (o.dropout() > 0) dropout_ = register_module("dropout", torch::nn::Dropout(o.dropout()));
    out_ = register_module("out", torch::nn::Linear(o.hidden_units(), classes));
    // Keras' Glorot-uniform kernels and zero biases, as the study's Dense layers started.
    torch::NoGradGuard no_grad;
    for (auto* linear : {&hidden_, &out_}) {
      torch::nn::init::xavier_uniform_((*linear)->weight);
      torch::nn::init::zeros_((*linear)->bias);
    }
  }
  torch::Tensor forward(torch::Tensor x) {
    x = torch::relu(hidden_->forward(x));
    if (batch_norm_) x = batch_norm_->forward(x);
    if (dropout_) x = dropout_->forward(x);
    return out_->forward(x);
  }
  torch::Tensor regularization() { return l2_ > 0 ? hidden_->weight.pow(2).sum() * l2_ : torch::Tensor(); }

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
  TORCH_ARG(std::string, mode) = "frozen";
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
  TORCH_ARG(std::string, head) = "study";
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
inline BackboneOptions read_backbone_options(Params& params, const ModelSpec& spec, const std::string& model,
                                      int64_t blocks, int64_t default_blocks, const std::vector<std::string>& poolings,
                                      HeadOptions head_defaults) {
  BackboneOptions o;
  o.pretrained(params.get_bool("pretrained", true));
  o.weights(params.get_path("weights", ""));
  o.mode(params.get_string("mode", o.mode(), kModes));
  o.trainable_blocks(params.get_int("trainable_blocks", o.pretrained() ? default_blocks : blocks, {1, blocks}));
  params.describe("trainable_blocks", "", std::to_string(default_blocks) + " (" + std::to_string(blocks) +
                                               " with pretrained = false)");
  o.backbone_lr_scale(params.get_float("backbone_lr_scale", o.pretrained() ? 0.1 : 1.0, {0.0, 100.0}));
  params.describe("backbone_lr_scale", "", "0.1 (1.0 with pretrained = false)");
  o.train_batch_norm(params.get_bool("train_batch_norm", false));
  o.head(params.get_string("head", o.head(), kHeads));
  o.pooling(params.get_string("pooling", poolings.front(), poolings));
  o.imagenet_normalize(params.get_bool("imagenet_normalize", true));
  o.head_options = read_head_options(params, head_defaults);

  // Without the ImageNet classifier when the config does not use it (VGG16's is 120M
  // parameters), as the shipped configs name their files.
  const std::string file =
      params.has("weights") ? o.weights() : model + (o.head() == "imagenet" ? "_imagenet.pt" : "_imagenet_notop.pt");
  if (o.pretrained() && !params.has("weights"))
    params.fail("weights", "is required with pretrained = true (the default): export ImageNet weights on a machine "
                           "with internet with \"" + export_command(model, file) + "\", copy the file next to this "
                           "config and set weights = \"" + file + "\"; or set pretrained = false and mode = "
                           "\"finetune\" to train from scratch");
  if (!o.pretrained() && params.has("weights"))
    params.fail("weights", "is set but pretrained = false never reads it; remove weights, or set pretrained = true");
  if (!o.pretrained() && o.mode() == "frozen")
    params.fail("mode", "\"frozen\" needs pretrained weights (a frozen random backbone learns nothing), but "
                        "pretrained = false; set mode = \"finetune\" to train from scratch, or pretrained = true "
                        "with a weights file");
  if (o.mode() == "frozen")
    for (const std::string key : {"trainable_blocks", "backbone_lr_scale", "train_batch_norm"})
      if (params.has(key))
        params.fail(key, "only applies to mode = \"finetune\" (mode is \"frozen\"); remove it or set mode = "
                         "\"finetune\"");
  if (o.head() == "imagenet") {
    for (const auto& key : kHeadKeys)
      if (params.has(key))
        params.fail(key, "only applies to head = \"study\" (head is \"imagenet\", torchvision's own classifier); "
                         "remove it or set head = \"study\"");
    if (spec.num_classes != 1000)
      params.fail("head", "\"imagenet\" keeps torchvision's 1000-class ImageNet classifier, but the data has " +
                              std::to_string(spec.num_classes) + " classes; use head = \"study\"");
    if (o.pooling() != poolings.front())
      params.fail("pooling", "must be \"" + poolings.front() + "\" with head = \"imagenet\", as torchvision's "
                             "classifier expects (was \"" + o.pooling() + "\")");
  }
  return o;
}

inline void set_trainable(torch::nn::Module& module, bool trainable) {
  for (auto& p : module.parameters()) p.requires_grad_(trainable);
}

inline void hold_batch_norm_in_eval(torch::nn::Module& module) {
  for (const auto& m : module.modules())
    if (m->as<torch::nn::BatchNorm2d>()) m->eval();
}

/// The torchvision backbones: registered children named as torchvision names them,
/// split into blocks (input end first) that freeze and unfreeze as units.
class TorchvisionNetwork : public Network {
 public:
  torch::Tensor forward(torch::Tensor images) override {
    if (frozen()) {
      torch::Tensor features;
      {
        // No backbone tensor needs a gradient; skipping the graph saves its memory.
        torch::NoGradGuard no_grad;
        features = extract_features(images);
      }
      return head(features);
    }
    return head(features_of(images));
  }

  bool has_frozen_features() const override { return frozen(); }

  torch::Tensor extract_features(torch::Tensor images) override { return features_of(images); }

  torch::Tensor head(torch::Tensor features) override {
    return study_head_ ? study_head_->forward(features) : imagenet_top(features);
  }

  torch::Tensor regularization() override { return study_head_ ? study_head_->regularization() : torch::Tensor(); }

  std::vector<ParameterGroup> parameter_groups() override {
    std::vector<ParameterGroup> groups;
    const size_t first_trained = blocks_.size() - static_cast<size_t>(trained_blocks());
    ParameterGroup frozen_group{"backbone", {}, false, 1.0};
    ParameterGroup finetune_group{"finetune", {}, true, options_.backbone_lr_scale()};
    for (size_t b = 0; b < blocks_.size(); ++b)
      for (auto* module : blocks_[b])
        for (auto& p : module->parameters()) (b < first_trained ? frozen_group : finetune_group).parameters.push_back(p);
    if (!frozen_group.parameters.empty()) groups.push_back(std::move(frozen_group));
    if (!finetune_group.parameters.empty()) groups.push_back(std::move(finetune_group));
    ParameterGroup head_group{"head", head_parameters(), true, 1.0};
    groups.push_back(std::move(head_group));
    return groups;
  }

  std::string features_cache_key() const override {
    if (!frozen()) return "";
    return model_ + " weights " + weights_identity_ + " pooling " + options_.pooling() + " normalize " +
           (options_.imagenet_normalize() ? "imagenet" : "none");
  }

  // Module::train() reaches every child; frozen blocks (and, unless train_batch_norm,
  // every batch norm of the backbone) go straight back to eval mode so that their
  // statistics stay ImageNet's and frozen weights stay bit-identical.
  void train(bool on = true) override {
    torch::nn::Module::train(on);
    if (!on) return;
    const size_t first_trained = blocks_.size() - static_cast<size_t>(trained_blocks());
    for (size_t b = 0; b < blocks_.size(); ++b)
      for (auto* module : blocks_[b]) {
        if (b < first_trained) {
          module->eval();
        } else if (!options_.train_batch_norm()) {
          hold_batch_norm_in_eval(*module);
        }
      }
  }

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

  bool frozen() const { return options_.mode() == "frozen"; }
  int64_t trained_blocks() const { return frozen() ? 0 : options_.trainable_blocks(); }

  torch::Tensor features_of(torch::Tensor images) {
    if (options_.imagenet_normalize()) images = imagenet_normalize(images);
    return pool(backbone(images));
  }

  /// Called by the subclass constructor once its modules exist: applies the mode.
  void finish_setup(const std::string& weights_identity) {
    weights_identity_ = weights_identity;
    const size_t first_trained = blocks_.size() - static_cast<size_t>(trained_blocks());
    for (size_t b = 0; b < blocks_.size(); ++b)
      for (auto* module : blocks_[b]) set_trainable(*module, b >= first_trained);
  }

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
inline std::string load_backbone_weights(Params& params, const BackboneOptions& options, const std::string& model,
                                  const std::vector<ExpectedTensor>& expected, const std::string& top_prefix,
                                  bool top_required) {
  NamedTensors file;
  std::string identity;
  std::string problem = read_weights_file(options.weights(), model, file, identity);
  if (problem.empty()) problem = load_checked(file, expected, top_prefix, top_required, model);
  if (!problem.empty()) params.fail("weights", in_quotes(options.weights()) + " " + problem);
  return identity;
}

}  // namespace bachlab::sdk::transfer
