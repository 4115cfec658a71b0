#include "host/train/cached_features.h"

#include "host/train/batch_source.h"
#include "host/train/progress.h"
#include "host/train/trainer.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>

#include <chrono>

namespace bachlab::host {

CachedFeatures::CachedFeatures(FeatureCacheSettings settings, FeatureInputs inputs, torch::Device device)
    : cache_(std::move(settings)), inputs_(std::move(inputs)), device_(device) {}

void CachedFeatures::on_epoch_begin(Trainer& trainer, int64_t epoch, BatchSource& train) {
  training_features(trainer.model(), train, epoch);
}

torch::Tensor CachedFeatures::training_features(sdk::Network& model, BatchSource& train, int64_t epoch) {
  if (!train.whole_images())
    throw Error("a model with a frozen backbone trains on whole images only (its features are cached per image); "
                "set [data.patches] size = 0 or fine-tune the backbone");
  const torch::Tensor& images = train.whole_images()->images;
  if (prepared_epoch_ != epoch || !prepared_images_.is_same(images)) {
    prepared_ = timed(model, images, epoch);
    prepared_epoch_ = epoch;
    prepared_images_ = images;
  }
  return prepared_;
}

BatchSource& CachedFeatures::epoch_batches(sdk::Network& model, BatchSource& train, int64_t epoch) {
  batches_.emplace(train, training_features(model, train, epoch));
  return *batches_;
}

torch::Tensor CachedFeatures::prediction_inputs(sdk::Network& model, const torch::Tensor& images) {
  return timed(model, images, 0);
}

torch::Tensor CachedFeatures::logits(sdk::Network& model, const torch::Tensor& features) {
  return model.frozen_features()->head(features.to(device_)).to(torch::kFloat32);
}

torch::Tensor CachedFeatures::timed(sdk::Network& model, const torch::Tensor& images, int64_t epoch) {
  const auto start = std::chrono::steady_clock::now();
  torch::Tensor features = epoch == 0 ? cache_.features(model, images, inputs_, 0)
                                      : cache_.training_features(model, images, inputs_, epoch);
  // A backbone pass or a disk read is worth a line; memory hits are not.
  if (progress_ && cache_.last_note() != "memory")
    progress_->note(fmt::format("features of {} images{}: {}, {:.1f}s", images.size(0),
                                epoch > 0 && !inputs_.augmentations.empty() ? " (augmented copy)" : "",
                                cache_.last_note(),
                                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()));
  return features;
}

}  // namespace bachlab::host
