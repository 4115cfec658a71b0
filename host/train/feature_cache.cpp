#include "host/train/feature_cache.h"

#include "host/util/atomic_file.h"
#include "host/util/shape_text.h"
#include "host/util/cache_key.h"

#include <bachlab/sdk/hash.h>
#include <bachlab/sdk/error.h>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include <cstring>
#include <sstream>

namespace bachlab::host {

namespace fs = std::filesystem;

namespace {

// Bumped whenever what a stored feature means changes, so older files are recomputed.
constexpr int kFeatureFormat = 1;

// The first line where two keys differ, for "cache is stale: ...".
std::string first_difference(const std::string& stored, const std::string& current) {
  const auto lines = first_differing_lines(stored, current);
  if (!lines) return "its key differs";
  return "\"" + lines->first + "\" is now \"" + lines->second + "\"";
}

torch::Device device_of(sdk::Network& network) {
  for (const auto& p : network.parameters()) return p.device();
  return torch::kCPU;
}

}  // namespace

torch::Tensor to_unit(const torch::Tensor& batch) {
  if (batch.scalar_type() == torch::kUInt8) return batch.to(torch::kFloat32).div_(255.0);
  return batch;
}

std::string frozen_augmentation_problem(size_t augmentations) {
  return "is 0, but " + std::to_string(augmentations) +
         (augmentations == 1 ? " augmentation is" : " augmentations are") +
         " configured and the model's backbone is frozen (mode = \"frozen\"), so cached features would never see an "
         "augmented image; set augmented_copies = 5 under [train.feature_cache] (each epoch then trains on one of 5 "
         "augmented copies, each computed once), or set mode = \"finetune\" in [model] to augment every batch afresh";
}

FeatureCache::FeatureCache(FeatureCacheSettings settings) : settings_(std::move(settings)) {}

uint64_t FeatureCache::content_hash(const torch::Tensor& images) {
  for (const auto& h : hashed_)
    if (h.tensor.unsafeGetTensorImpl() == images.unsafeGetTensorImpl() && h.version == images._version()) return h.hash;
  torch::Tensor bytes = images.to(torch::kCPU).contiguous();
  // The SDK's hash, the one the transfer plugins identify weights files with.
  const uint64_t hash = sdk::hash_bytes(bytes.data_ptr(), bytes.numel() * bytes.element_size());
  // Train, validation and test splits, a few of each at most: keep the list short.
  if (hashed_.size() >= 8) hashed_.erase(hashed_.begin());
  hashed_.push_back({images, images._version(), hash});
  return hash;
}

std::string FeatureCache::key_for(sdk::Network& network, const torch::Tensor& images, const FeatureInputs& inputs,
                                  int64_t copy) {
  std::string extractor = network.frozen_features()->features_cache_key();
  // A model that does not identify its weights can only be cached for this very object.
  if (extractor.empty()) extractor = fmt::format("unnamed network at {}", static_cast<const void*>(&network));
  std::string key = fmt::format("bachlab features {}\ntorch {}\nextractor {}\nimages {} {} {:016x}\ntransform {}\n",
                                kFeatureFormat, TORCH_VERSION, extractor, shape_text(images.sizes()),
                                c10::toString(images.scalar_type()), content_hash(images), inputs.transform.key);
  if (copy > 0)
    key += fmt::format("copy {} seed {}\naugmentations {}\n", copy, inputs.seed, inputs.augmentations_key);
  else
    key += "copy 0\n";
  return key;
}

fs::path FeatureCache::cache_file(sdk::Network& network, const torch::Tensor& images, const FeatureInputs& inputs,
                                  int64_t copy) {
  return settings_.folder / fmt::format("{:016x}.pt", sdk::hash_text(key_for(network, images, inputs, copy)));
}

torch::Tensor FeatureCache::compute(sdk::Network& network, const torch::Tensor& images, const FeatureInputs& inputs,
                                    int64_t copy) {
  const bool was_training = network.is_training();
  network.eval();
  torch::NoGradGuard no_grad;
  const torch::Device device = device_of(network);
  // Copy k always draws the same numbers, whatever was cached before it.
  torch::Generator generator =
      at::make_generator<at::CPUGeneratorImpl>(inputs.seed ^ (0xA5A5A5A5ULL * static_cast<uint64_t>(copy + 1)));
  const int64_t n = images.size(0);
  const int64_t batch = std::max<int64_t>(1, inputs.batch_size);
  std::vector<torch::Tensor> parts;
  try {
    for (int64_t start = 0; start < n; start += batch) {
      torch::Tensor x = to_unit(images.slice(0, start, std::min(n, start + batch)));
      if (copy > 0)
        for (const auto& augmentation : inputs.augmentations) x = augmentation->apply(x, generator);
      x = inputs.transform(x);
      parts.push_back(network.frozen_features()->extract_features(x.to(device)).to(torch::kCPU, torch::kFloat32).contiguous());
    }
  } catch (...) {
    network.train(was_training);
    throw;
  }
  network.train(was_training);
  ++stats_.computed;
  stats_.images_computed += n;
  return parts.empty() ? torch::empty({0, 0}) : torch::cat(parts);
}

torch::Tensor FeatureCache::features(sdk::Network& network, const torch::Tensor& images, const FeatureInputs& inputs,
                                     int64_t copy) {
  if (network.frozen_features() == nullptr)
    throw Error("the feature cache needs a model with a frozen feature extractor (frozen_features() is null); "
                "with mode = \"finetune\" every batch must go through the whole network, so train without the cache");
  TORCH_CHECK(images.dim() == 4, "FeatureCache: images must be (N, C, H, W), got ", images.sizes());
  const std::string key = key_for(network, images, inputs, copy);
  if (auto it = memory_.find(key); it != memory_.end()) {
    ++stats_.memory_hits;
    last_note_ = "memory";
    return it->second;
  }

  const bool use_disk = settings_.disk && !settings_.folder.empty() && !network.frozen_features()->features_cache_key().empty() &&
                        (copy == 0 || !inputs.augmentations_key.empty());
  const fs::path file = settings_.folder / fmt::format("{:016x}.pt", sdk::hash_text(key));
  std::string why = "no cache yet";
  if (use_disk && fs::exists(file)) {
    try {
      torch::serialize::InputArchive archive;
      archive.load_from(file.string());
      c10::IValue stored_key;
      archive.read("key", stored_key);
      if (stored_key.isString() && stored_key.toStringRef() == key) {
        torch::Tensor stored;
        archive.read("features", stored);
        if (stored.dim() == 2 && stored.size(0) == images.size(0)) {
          ++stats_.disk_hits;
          last_note_ = "disk";
          memory_[key] = stored;
          return stored;
        }
        why = "cache was corrupt: " + file.string() + " holds features of shape " + shape_text(stored.sizes());
      } else {
        why = "cache is stale: " +
              (stored_key.isString() ? first_difference(stored_key.toStringRef(), key) : std::string("no key"));
      }
    } catch (const c10::Error& e) {
      why = "cache was corrupt: " + file.string() + " (" + e.what_without_backtrace() + ")";
    }
  }

  torch::Tensor computed = compute(network, images, inputs, copy);
  memory_[key] = computed;
  last_note_ = "computed (" + why + ")";
  if (use_disk) {
    try {
      fs::create_directories(settings_.folder);
      // A writer killed mid-write leaves its temporary file (up to the size of the
      // features); clear those whose process is gone, as the checkpoint folder does.
      remove_orphaned_temp_files(settings_.folder);
      torch::serialize::OutputArchive archive;
      archive.write("key", c10::IValue(key));
      archive.write("features", computed);
      write_archive_atomic(file, archive);
    } catch (const std::exception& e) {
      // The features are in memory; a read-only cache folder only costs the next run.
      last_note_ += std::string("; not written: ") + e.what();
    }
  }
  return computed;
}

torch::Tensor FeatureCache::training_features(sdk::Network& network, const torch::Tensor& images,
                                              const FeatureInputs& inputs, int64_t epoch) {
  TORCH_CHECK(epoch >= 1, "FeatureCache::training_features: epochs count from 1, got ", epoch);
  if (inputs.augmentations.empty()) return features(network, images, inputs, 0);
  if (settings_.augmented_copies == 0)
    throw Error((settings_.origin.empty() ? "" : settings_.origin + ": ") + "[train.feature_cache] augmented_copies " +
                frozen_augmentation_problem(inputs.augmentations.size()));
  return features(network, images, inputs, (epoch - 1) % settings_.augmented_copies + 1);
}

}  // namespace bachlab::host
