#pragma once
// Frozen-feature cache for transfer learning. When a model's backbone is frozen
// (sdk::Network::frozen_features() is not null), its pooled features depend only on the image, the
// backbone's weights and the input transform; so they are computed once per image, kept in
// memory and on disk, and every epoch after the first trains only the head on them: 50
// head epochs of ResNet50 on 400 images take seconds instead of 50 backbone passes.
//
// The trainer uses it whenever the model has frozen_features(): for training it asks for
// training_features() of the training split every epoch, for validation, test and predict
// for features() of copy 0, and trains or evaluates only the head on them.
//
// Keys, like the preprocessing cache's, hold everything that shapes the result: a content
// hash of the uint8 images, the model's sdk::FrozenFeatures::features_cache_key() (its weights file's path,
// size and content hash, pooling, normalisation), the input transform, LibTorch's version,
// and for augmented copies the augmentation settings and seed. A disk file is trusted only
// if the key stored in it matches in full; otherwise it is recomputed and rewritten
// (atomically, host/util/atomic_file.h).
//
// Augmentation with a frozen backbone: features cached once would never see an augmented
// image, and silently training on unaugmented features would ignore the config. So
// [train.feature_cache] augmented_copies = K caches K augmented copies of the training
// split (each computed once, from the experiment seed); epoch e trains on copy
// ((e - 1) mod K) + 1. With augmentations and K = 0 the cache refuses, naming both fixes
// (set augmented_copies, or use mode = "finetune" to augment every batch afresh); so does
// plan_experiment, at check time. Validation and test features are never augmented.

#include "host/train/train_settings.h"

#include <bachlab/sdk/augmentation.h>
#include <bachlab/sdk/model.h>
#include <bachlab/sdk/param_table.h>

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace bachlab::host {

/// Turns a float batch in [0,1] (after any augmentation) into the model's input, e.g. by
/// removing per-channel statistics; `key` names it in feature cache keys.
/// A stored uint8 batch as floats in [0,1]; a float batch as it is.
torch::Tensor to_unit(const torch::Tensor& batch);

struct BatchTransform {
  /// Empty: identity.
  std::function<torch::Tensor(const torch::Tensor& batch)> apply;
  /// Identifies `apply` (e.g. "unit", or the standardize statistics).
  std::string key = "identity";
  torch::Tensor operator()(const torch::Tensor& batch) const { return apply ? apply(batch) : batch; }
};

/// Why `augmentations` augmentations with a frozen backbone and augmented_copies = 0 are
/// refused, phrased to follow "[train.feature_cache] augmented_copies ".
std::string frozen_augmentation_problem(size_t augmentations);

/// What, besides the pixels and the extractor, shapes the features.
struct FeatureInputs {
  /// The trainer's normalisation, applied after any augmentation.
  BatchTransform transform;
  /// Applied, in order, to each batch of an augmented copy (never to copy 0).
  std::vector<std::shared_ptr<sdk::Augmentation>> augmentations;
  /// Identifies the augmentations' settings in the key (e.g. the [[augment]] tables).
  /// Empty: augmented copies are kept in memory only, since nothing would tell two
  /// settings' files apart.
  std::string augmentations_key;
  /// Draws augmented copy k from a generator seeded with (seed, k).
  uint64_t seed = 0;
  /// Images per backbone forward pass (memory, not results). Default: 32.
  int64_t batch_size = 32;
};

/// Counters since construction, for progress lines, tests and benchmarks.
struct FeatureCacheStats {
  /// Requests served from memory.
  int64_t memory_hits = 0;
  /// Requests served from a disk file.
  int64_t disk_hits = 0;
  /// Requests that ran the backbone.
  int64_t computed = 0;
  /// Images that went through the backbone.
  int64_t images_computed = 0;
};

class FeatureCache {
 public:
  explicit FeatureCache(FeatureCacheSettings settings = {});

  /// (N, F) float32 CPU features of `images` ((N, C, H, W), uint8 0..255 or float in
  /// [0,1]) for augmented copy `copy` (0: not augmented). The network runs in eval mode
  /// without gradients and is returned to its previous mode. Throws Error if the network
  /// has no frozen feature extractor.
  torch::Tensor features(sdk::Network& network, const torch::Tensor& images, const FeatureInputs& inputs,
                         int64_t copy = 0);

  /// The features epoch `epoch` (1-based) trains on: copy 0 without augmentations,
  /// otherwise copy ((epoch - 1) mod augmented_copies) + 1. Throws Error if augmentations
  /// are configured and augmented_copies is 0.
  torch::Tensor training_features(sdk::Network& network, const torch::Tensor& images, const FeatureInputs& inputs,
                                  int64_t epoch);

  /// The disk file features() uses for these arguments (whether or not it exists).
  std::filesystem::path cache_file(sdk::Network& network, const torch::Tensor& images, const FeatureInputs& inputs,
                                   int64_t copy = 0);

  const FeatureCacheStats& stats() const { return stats_; }
  /// What the last request did: "memory", "disk", "computed (no cache yet)",
  /// "computed (cache is stale: ...)", "computed (cache was corrupt: ...)", with
  /// "; not written: <why>" appended when the disk file could not be written.
  const std::string& last_note() const { return last_note_; }
  const FeatureCacheSettings& settings() const { return settings_; }

  /// Forgets the in-memory features (the disk files stay).
  void clear_memory() { memory_.clear(); }

 private:
  std::string key_for(sdk::Network& network, const torch::Tensor& images, const FeatureInputs& inputs, int64_t copy);
  uint64_t content_hash(const torch::Tensor& images);
  torch::Tensor compute(sdk::Network& network, const torch::Tensor& images, const FeatureInputs& inputs,
                        int64_t copy);

  FeatureCacheSettings settings_;
  FeatureCacheStats stats_;
  std::string last_note_;
  std::map<std::string, torch::Tensor> memory_;
  // Hashing 60 MB of pixels every epoch would cost more than the head's training, so the
  // hash of a tensor is remembered while the tensor (held here, so its storage cannot be
  // reused by another) is unchanged: same TensorImpl, same version counter.
  struct HashedTensor {
    torch::Tensor tensor;
    int64_t version = 0;
    uint64_t hash = 0;
  };
  std::vector<HashedTensor> hashed_;
};

}  // namespace bachlab::host
