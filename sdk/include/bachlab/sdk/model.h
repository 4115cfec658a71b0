#pragma once
/// \file model.h
/// Model plugins build a network that maps a batch of images (N, C, H, W) to class logits.

#include <bachlab/sdk/params.h>
#include <bachlab/sdk/plugin.h>

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace bachlab::sdk {

/// What the host tells a model about its data.
struct ModelSpec {
  /// Input channels (3 for RGB photos).
  int64_t channels = 3;
  /// Input height in pixels.
  int64_t height = 224;
  /// Input width in pixels.
  int64_t width = 224;
  /// Number of classes; the network returns this many logits per image.
  int64_t num_classes = 4;
};

/// A named set of parameters that trains together (e.g. "backbone" and "head").
struct ParameterGroup {
  /// Name shown in logs and used by configs (e.g. "head").
  std::string name;
  /// The tensors of this group.
  std::vector<torch::Tensor> parameters;
  /// False for a frozen group: the optimizer never sees it.
  bool trainable = true;
  /// Multiplies the optimizer's learning rate for this group. Default: 1.
  double lr_scale = 1.0;
};

/// Transfer learning: a network that is a frozen feature extractor followed by a trainable
/// head, so that the host may compute each image's features once, cache them, and train
/// only the head. A network offers it through Network::frozen_features(); one interface
/// for the three calls that only such a network has, so a network that trains end to end
/// implements none of them.
class FrozenFeatures {
 public:
  virtual ~FrozenFeatures() = default;
  /// The frozen extractor's output for a batch; called in eval mode, without gradients.
  virtual torch::Tensor extract_features(torch::Tensor images) = 0;
  /// The trainable head applied to features from extract_features(); forward(x) == head(extract_features(x)).
  virtual torch::Tensor head(torch::Tensor features) = 0;
  /// Identifies the extractor's weights so cached features are invalidated when they change.
  virtual std::string features_cache_key() const = 0;
};

/// The network a model plugin builds.
class Network : public torch::nn::Module {
 public:
  /// Logits of shape (N, num_classes) for a batch of shape (N, C, H, W).
  virtual torch::Tensor forward(torch::Tensor images) = 0;

  /// Parameter groups. Default: one trainable group "all" with every parameter.
  virtual std::vector<ParameterGroup> parameter_groups() {
    return {ParameterGroup{"all", parameters(), true, 1.0}};
  }

  /// An extra term added to the loss (e.g. an L2 penalty on one layer). Default: none,
  /// returned as an undefined tensor.
  virtual torch::Tensor regularization() { return {}; }

  /// The frozen feature extractor this network is, or nullptr (the default) if it trains end to end.
  virtual FrozenFeatures* frozen_features() { return nullptr; }
};

/// What a model needs of its input, beyond at least 2 classes.
struct InputNeeds {
  /// Exactly this many channels (3 is said as "3-channel (RGB) images"); 0: at least 1.
  int64_t channels = 0;
  /// Height and width of at least this many pixels.
  int64_t min_side = 1;
  /// How to fix it, the message's end.
  std::string advice = "check [data] image_size and the class list";
};

/// Throws bachlab::Error naming `model` unless `spec` meets `needs`, e.g. "model
/// \"vgg16\": expected 3-channel (RGB) images of at least 32x32 pixels and at least 2
/// classes, found 3 channels, 16x16 pixels and 4 classes; <advice>".
void check_spec(const ModelSpec& spec, const std::string& model, const InputNeeds& needs = {});

/// The interface a model plugin's factory implements.
class ModelPlugin {
 public:
  virtual ~ModelPlugin() = default;
  /// Builds a freshly initialised network. Reads its settings from `params` (recording
  /// problems there) and throws bachlab::Error for what params cannot express.
  virtual std::shared_ptr<Network> create(const ModelSpec& spec, Params& params) const = 0;
};

template <>
struct KindInterface<kind_tags::model> {
  using type = ModelPlugin;
};

}  // namespace bachlab::sdk
