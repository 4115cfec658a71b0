#include <bachlab/plugins/transfer.h>

#include <bachlab/sdk/hash.h>

#include <cstdio>
#include <cstring>
#include <fstream>

namespace bachlab::plugins::transfer {

std::string shape_text(c10::IntArrayRef sizes) {
  std::string out = "[";
  for (size_t i = 0; i < sizes.size(); ++i) out += (i ? ", " : "") + std::to_string(sizes[i]);
  return out + "]";
}

std::string in_quotes(const std::string& text) { return "\"" + text + "\""; }

torch::Tensor imagenet_normalize(const torch::Tensor& images) {
  static const torch::Tensor mean = torch::tensor({0.485f, 0.456f, 0.406f}).view({1, 3, 1, 1});
  static const torch::Tensor std = torch::tensor({0.229f, 0.224f, 0.225f}).view({1, 3, 1, 1});
  return (images - mean.to(images.device())) / std.to(images.device());
}

std::string content_identity(const std::string& path, const std::vector<char>& bytes) {
  std::error_code ec;
  const std::filesystem::path absolute = std::filesystem::absolute(path, ec);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(sdk::hash_bytes(bytes.data(), bytes.size())));
  return absolute.string() + " " + std::to_string(bytes.size()) + " bytes " + hex;
}

bool read_bytes(const std::string& path, std::vector<char>& bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

int64_t seed_in_file_name(const std::string& output) {
  const std::string name = std::filesystem::path(output).filename().string();
  for (size_t at = name.find("seed"); at != std::string::npos; at = name.find("seed", at + 1)) {
    size_t end = at + 4;
    while (end < name.size() && name[end] >= '0' && name[end] <= '9') ++end;
    if (end > at + 4 && end - at - 4 <= 9) return std::stoll(name.substr(at + 4, end - at - 4));
  }
  return -1;
}

std::string export_command(const std::string& model, const std::string& output) {
  const int64_t seed = seed_in_file_name(output);
  const bool notop = std::filesystem::path(output).filename().string().find("notop") != std::string::npos;
  return "/usr/bin/python3 scripts/export_torchvision.py " + model +
         (seed >= 0 ? " --random-seed " + std::to_string(seed) : std::string(" --pretrained")) +
         (notop ? " --notop" : "") + " -o " + output;
}

std::string how_to_export(const std::string& model, const std::string& output) {
  if (seed_in_file_name(output) >= 0)
    return "make these seeded random weights (no download) from the checkout with \"" + export_command(model, output) +
           "\", as `scripts/dev.sh setup` does for the quick configs";
  return "export ImageNet weights on a machine with internet with \"" + export_command(model, output) +
         "\" and copy the file there";
}

std::string value_kind(const c10::IValue& value) {
  if (value.isNone()) return "None";
  if (value.isTensor()) return "a single tensor";
  if (value.isList()) return "a list";
  if (value.isTuple()) return "a tuple";
  if (value.isString()) return "a string";
  if (value.isInt() || value.isDouble() || value.isBool()) return "a number";
  return "an object (" + std::string(value.tagKind()) + ")";
}

std::string read_weights_file(const std::string& path, const std::string& model, NamedTensors& out,
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

std::string load_checked(const NamedTensors& file, const std::vector<ExpectedTensor>& expected,
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

void expect_all(torch::nn::Module& module, const std::string& prefix, std::vector<ExpectedTensor>& out,
                bool copy) {
  for (const auto& item : module.named_parameters())
    out.push_back({prefix + item.key(), item.value().sizes().vec(), copy ? item.value() : torch::Tensor()});
  for (const auto& item : module.named_buffers())
    out.push_back({prefix + item.key(), item.value().sizes().vec(), copy ? item.value() : torch::Tensor()});
}

HeadOptions read_head_options(Params& params, HeadOptions o) {
  o.hidden_units(params.get_int("hidden_units", o.hidden_units(), {1, 65536}));
  o.dropout(params.get_float("dropout", o.dropout(), {0.0, 0.99}));
  o.batch_norm(params.get_bool("batch_norm", o.batch_norm()));
  o.l2(params.get_float("l2", o.l2(), {0.0, 10.0}));
  return o;
}

BackboneOptions read_backbone_options(Params& params, const ModelSpec& spec, const std::string& model,
                                      int64_t blocks, int64_t default_blocks, const std::vector<std::string>& poolings,
                                      HeadOptions head_defaults) {
  BackboneOptions o;
  o.pretrained(params.get_bool("pretrained", true));
  o.weights(params.get_path("weights", ""));
  o.mode(params.get_string("mode", "frozen", {"frozen", "finetune"}) == "finetune" ? Mode::finetune : Mode::frozen);
  o.trainable_blocks(params.get_int("trainable_blocks", o.pretrained() ? default_blocks : blocks, {1, blocks}));
  params.describe("trainable_blocks", "", std::to_string(default_blocks) + " (" + std::to_string(blocks) +
                                               " with pretrained = false)");
  o.backbone_lr_scale(params.get_float("backbone_lr_scale", o.pretrained() ? 0.1 : 1.0, {0.0, 100.0}));
  params.describe("backbone_lr_scale", "", "0.1 (1.0 with pretrained = false)");
  o.train_batch_norm(params.get_bool("train_batch_norm", false));
  o.head(params.get_string("head", "study", {"study", "imagenet"}) == "imagenet" ? Head::imagenet : Head::study);
  o.pooling(params.get_string("pooling", poolings.front(), poolings));
  o.imagenet_normalize(params.get_bool("imagenet_normalize", true));
  o.head_options = read_head_options(params, head_defaults);

  // Without the ImageNet classifier when the config does not use it (VGG16's is 120M
  // parameters), as the shipped configs name their files.
  const std::string file =
      params.has("weights") ? o.weights() : model + (o.head() == Head::imagenet ? "_imagenet.pt" : "_imagenet_notop.pt");
  if (o.pretrained() && !params.has("weights"))
    params.fail("weights", "is required with pretrained = true (the default): export ImageNet weights on a machine "
                           "with internet with \"" + export_command(model, file) + "\", copy the file next to this "
                           "config and set weights = \"" + file + "\"; or set pretrained = false and mode = "
                           "\"finetune\" to train from scratch");
  if (!o.pretrained() && params.has("weights"))
    params.fail("weights", "is set but pretrained = false never reads it; remove weights, or set pretrained = true");
  if (!o.pretrained() && o.mode() == Mode::frozen)
    params.fail("mode", "\"frozen\" needs pretrained weights (a frozen random backbone learns nothing), but "
                        "pretrained = false; set mode = \"finetune\" to train from scratch, or pretrained = true "
                        "with a weights file");
  if (o.mode() == Mode::frozen)
    for (const std::string key : {"trainable_blocks", "backbone_lr_scale", "train_batch_norm"})
      if (params.has(key))
        params.fail(key, "only applies to mode = \"finetune\" (mode is \"frozen\"); remove it or set mode = "
                         "\"finetune\"");
  if (o.head() == Head::imagenet) {
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

void set_trainable(torch::nn::Module& module, bool trainable) {
  for (auto& p : module.parameters()) p.requires_grad_(trainable);
}

void hold_batch_norm_in_eval(torch::nn::Module& module) {
  for (const auto& m : module.modules())
    if (m->as<torch::nn::BatchNorm2d>()) m->eval();
}

std::string load_backbone_weights(Params& params, const BackboneOptions& options, const std::string& model,
                                  const std::vector<ExpectedTensor>& expected, const std::string& top_prefix,
                                  bool top_required) {
  NamedTensors file;
  std::string identity;
  std::string problem = read_weights_file(options.weights(), model, file, identity);
  if (problem.empty()) problem = load_checked(file, expected, top_prefix, top_required, model);
  if (!problem.empty()) params.fail("weights", in_quotes(options.weights()) + " " + problem);
  return identity;
}
StudyHeadImpl::StudyHeadImpl(int64_t features, int64_t classes, const HeadOptions& o) : l2_(o.l2()) {
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
torch::Tensor StudyHeadImpl::forward(torch::Tensor x) {
  x = torch::relu(hidden_->forward(x));
  if (batch_norm_) x = batch_norm_->forward(x);
  if (dropout_) x = dropout_->forward(x);
  return out_->forward(x);
}
torch::Tensor StudyHeadImpl::regularization() { return l2_ > 0 ? hidden_->weight.pow(2).sum() * l2_ : torch::Tensor(); }

torch::Tensor TorchvisionNetwork::forward(torch::Tensor images) {
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

torch::Tensor TorchvisionNetwork::head(torch::Tensor features) {
  return study_head_ ? study_head_->forward(features) : imagenet_top(features);
}

torch::Tensor TorchvisionNetwork::regularization() { return study_head_ ? study_head_->regularization() : torch::Tensor(); }

std::vector<ParameterGroup> TorchvisionNetwork::parameter_groups() {
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

std::string TorchvisionNetwork::features_cache_key() const {
  return model_ + " weights " + weights_identity_ + " pooling " + options_.pooling() + " normalize " +
         (options_.imagenet_normalize() ? "imagenet" : "none");
}

void TorchvisionNetwork::train(bool on) {
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

torch::Tensor TorchvisionNetwork::features_of(torch::Tensor images) {
  if (options_.imagenet_normalize()) images = imagenet_normalize(images);
  return pool(backbone(images));
}
void TorchvisionNetwork::finish_setup(const std::string& weights_identity) {
  weights_identity_ = weights_identity;
  const size_t first_trained = blocks_.size() - static_cast<size_t>(trained_blocks());
  for (size_t b = 0; b < blocks_.size(); ++b)
    for (auto* module : blocks_[b]) set_trainable(*module, b >= first_trained);
}
}  // namespace bachlab::plugins::transfer
