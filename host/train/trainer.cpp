#include "host/train/trainer.h"

#include "host/train/checkpoints.h"
#include "host/train/data_parallel.h"
#include "host/train/state_json.h"
#include "host/train/lr_schedule.h"
#include "host/train/model_state.h"
#include "host/train/progress.h"
#include "host/util/memory.h"

#include <bachlab/sdk/error.h>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <limits>

namespace bachlab::host {

namespace fs = std::filesystem;
namespace F = torch::nn::functional;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// What to say when the loss stops being a number: the likely cause first.
std::string divergence_message(int64_t epoch, int64_t batch, int64_t batches, double loss, bool inputs_finite,
                               double lr) {
  const std::string where = fmt::format("training diverged in epoch {}, batch {} of {}: ", epoch, batch + 1, batches);
  if (!inputs_finite)
    return where + fmt::format("the batch's pixel values (after any [[augment]] plugins) are not all finite, so the "
                               "loss is {}; check the augmentations' settings (a fill value such as cval = nan) and "
                               "the input data",
                               loss);
  return where + fmt::format("the loss is {}. The likely cause is a learning rate too high for this model and "
                             "optimizer (lr {:g}); lower [optimizer] lr, e.g. tenfold",
                             loss, lr);
}

// set_batch_hook()'s callback.
class BatchHook : public TrainingCallback {
 public:
  explicit BatchHook(std::function<void(int64_t, int64_t)> hook) : hook_(std::move(hook)) {}
  void on_batch_end(Trainer&, const BatchEnd& batch) override { hook_(batch.epoch, batch.batch); }

 private:
  std::function<void(int64_t, int64_t)> hook_;
};

}  // namespace

Trainer::Trainer(TrainerParts parts, TrainSettings settings, uint64_t seed, BatchTransform normalize)
    : parts_(std::move(parts)),
      settings_(std::move(settings)),
      seed_(seed),
      normalize_(std::move(normalize)),
      device_(settings_.device),
      // A different stream from the default generator's, which is seeded with `seed` too.
      generator_(at::make_generator<at::CPUGeneratorImpl>(seed ^ 0x9E3779B97F4A7C15ULL)) {
  TORCH_CHECK(parts_.model && parts_.optimizer, "Trainer needs a model and an optimizer");
  // Every batch frees and allocates the same large buffers again; see memory.h.
  reuse_freed_memory();
  // The schedule starts from each group's rate as the optimizer plugin built it (lr *
  // the group's lr_scale): the optimizer owns the rates, the schedule only moves them.
  std::vector<double> base_lrs;
  for (auto& group : parts_.optimizer->param_groups()) base_lrs.push_back(group.options().get_lr());
  parts_.model->to(device_);
  early_stopping_ = std::make_shared<EarlyStopping>(settings_.early_stopping, settings_.restore_best);
  add_callback(early_stopping_);
  add_callback(std::make_shared<LearningRateSchedule>(settings_.schedule, settings_.epochs, std::move(base_lrs)));
  if (parts_.model->has_frozen_features()) {
    FeatureInputs inputs;
    inputs.transform = normalize_;
    inputs.augmentations = parts_.augmentations;
    inputs.augmentations_key = parts_.augmentations_key;
    inputs.seed = seed_;
    inputs.batch_size = settings_.batch_size;
    frozen_features_ = std::make_shared<FrozenFeatures>(settings_.feature_cache, std::move(inputs));
    add_callback(frozen_features_);
  }
}

void Trainer::add_callback(std::shared_ptr<TrainingCallback> callback) { callbacks_.push_back(std::move(callback)); }

void Trainer::set_checkpoint_dir(const fs::path& folder) {
  checkpoints_ = std::make_shared<Checkpoints>(folder);
  checkpoints_->set_writing(!parallel_ || parallel_->leader());
  add_callback(checkpoints_);
}

void Trainer::set_data_parallel(std::shared_ptr<DataParallel> parallel) {
  parallel_ = std::move(parallel);
  if (checkpoints_) checkpoints_->set_writing(!parallel_ || parallel_->leader());
}

void Trainer::set_progress(std::ostream* out, bool interactive) {
  if (!out) return;
  auto progress = std::make_shared<ProgressOutput>(*out, interactive);
  if (frozen_features_) frozen_features_->set_progress(progress);
  add_callback(progress);
}

void Trainer::set_batch_hook(std::function<void(int64_t, int64_t)> hook) {
  add_callback(std::make_shared<BatchHook>(std::move(hook)));
}

void Trainer::set_validation(std::function<Prediction(const TensorSplit&)> validate) {
  validate_ = std::move(validate);
}

const FeatureCacheStats& Trainer::feature_cache_stats() const {
  static const FeatureCacheStats none;
  return frozen_features_ ? frozen_features_->stats() : none;
}

torch::Tensor Trainer::to_unit(const torch::Tensor& batch) const {
  if (batch.scalar_type() == torch::kUInt8) return batch.to(torch::kFloat32).div_(255.0);
  return batch;
}

EpochMetrics Trainer::train_epoch(const TensorSplit& train, int64_t epoch) {
  WholeImages source(train);
  return train_epoch(source, epoch);
}

EpochMetrics Trainer::train_epoch(BatchSource& train, int64_t epoch) {
  auto& model = *parts_.model;
  auto& optimizer = *parts_.optimizer;
  model.train();
  // Frozen backbone: the epoch's features, computed once; only the head runs per batch.
  const torch::Tensor features =
      frozen_features_ ? frozen_features_->training_features(model, train, epoch) : torch::Tensor();
  const int64_t n = train.start_epoch(generator_);
  const int64_t batch_size = settings_.batch_size;
  const int64_t batches = (n + batch_size - 1) / batch_size;
  const auto loss_options = F::CrossEntropyFuncOptions().label_smoothing(settings_.label_smoothing);

  std::vector<torch::Tensor> probabilities;
  std::vector<torch::Tensor> labels;
  probabilities.reserve(batches);
  labels.reserve(batches);
  double loss_sum = 0;
  const auto start = Clock::now();
  for (int64_t b = 0; b < batches; ++b) {
    const Batch batch = train.batch(b * batch_size, std::min(n, (b + 1) * batch_size));
    torch::Tensor y = batch.labels.to(device_);
    torch::Tensor x;
    if (features.defined()) {
      x = features.index_select(0, batch.rows);
    } else {
      // Every rank augments the whole batch, so that it draws what one process would.
      x = to_unit(batch.images);
      for (const auto& augmentation : parts_.augmentations) x = augmentation->apply(x, generator_);
    }
    if (parallel_) {
      const auto [begin, end] = parallel_->shard(x.size(0));
      x = x.slice(0, begin, end);
      y = y.slice(0, begin, end);
    }
    torch::Tensor logits = features.defined() ? model.head(x.to(device_)) : model.forward(normalize_(x).to(device_));
    torch::Tensor loss = F::cross_entropy(logits, y, loss_options);
    torch::Tensor extra = model.regularization();
    if (parallel_) {
      // This rank's share of the batch's mean loss (and of the regularization term), so
      // that the gradients summed over the ranks are those of the whole batch.
      // A rank whose share is empty (a last batch smaller than the group) adds zeros.
      loss = y.size(0) == 0 ? logits.sum() * 0.0
                            : loss * (static_cast<double>(y.size(0)) / static_cast<double>(batch.labels.size(0)));
      if (extra.defined()) extra = extra / static_cast<double>(parallel_->world());
    }
    if (extra.defined()) loss = loss + extra;
    optimizer.zero_grad();
    loss.backward();
    if (parallel_) {
      // The gradients and the loss, summed over the ranks in one collective: every rank
      // then sees the batch's loss and takes the same step.
      std::vector<torch::Tensor> summed;
      for (auto& p : model.parameters())
        if (p.requires_grad() && p.grad().defined()) summed.push_back(p.mutable_grad());
      torch::Tensor total = loss.detach().reshape({1}).to(torch::kCPU, torch::kFloat32).clone();
      summed.push_back(total);
      parallel_->sum(summed);
      loss = total;
    }
    // Stop at the first non-finite loss: a step on it would make every weight NaN, and
    // everything after (metrics, checkpoints, predictions) would be meaningless.
    const double loss_value = loss.item<double>();
    if (!std::isfinite(loss_value))
      throw Error(divergence_message(epoch, b, batches, loss_value, all_finite(x),
                                     optimizer.param_groups().front().options().get_lr()));
    optimizer.step();

    loss_sum += loss_value * static_cast<double>(batch.labels.size(0));
    torch::Tensor batch_probabilities = torch::softmax(logits.detach(), 1).to(torch::kCPU);
    if (parallel_) batch_probabilities = parallel_->gather_rows(batch_probabilities, batch.labels.size(0));
    probabilities.push_back(batch_probabilities);
    labels.push_back(batch.labels.to(torch::kCPU));
    const BatchEnd end{epoch, b, batches, loss_sum / static_cast<double>(std::min(n, (b + 1) * batch_size)),
                       seconds_since(start)};
    for (auto& callback : callbacks_) callback->on_batch_end(*this, end);
  }
  if (n == 0) return {kNaN, kNaN, kNaN, kNaN};
  torch::Tensor p = torch::cat(probabilities);
  torch::Tensor t = torch::cat(labels);
  return {loss_sum / static_cast<double>(n), accuracy(p, t), auroc_micro(p, t), auroc_macro(p, t)};
}

Prediction Trainer::predict(const TensorSplit& data) {
  auto& model = *parts_.model;
  model.eval();
  torch::NoGradGuard no_grad;
  const int64_t n = data.images.size(0);
  const bool has_labels = data.labels.defined();
  const auto loss_options = F::CrossEntropyFuncOptions()
                                .label_smoothing(settings_.label_smoothing)
                                .reduction(torch::kSum);
  const torch::Tensor features = frozen_features_ ? frozen_features_->features(model, data.images) : torch::Tensor();
  std::vector<torch::Tensor> probabilities;
  double loss_sum = 0;
  for (int64_t start = 0; start < n; start += settings_.batch_size) {
    const int64_t end = std::min(n, start + settings_.batch_size);
    torch::Tensor logits = features.defined()
                               ? model.head(features.slice(0, start, end).to(device_))
                               : model.forward(normalize_(to_unit(data.images.slice(0, start, end))).to(device_));
    if (has_labels)
      loss_sum += F::cross_entropy(logits, data.labels.slice(0, start, end).to(device_), loss_options).item<double>();
    probabilities.push_back(torch::softmax(logits, 1).to(torch::kCPU));
  }
  Prediction out;
  out.probabilities = probabilities.empty() ? torch::empty({0, 0}) : torch::cat(probabilities);
  out.loss = kNaN;
  if (has_labels && n > 0) {
    out.loss = loss_sum / static_cast<double>(n);
    torch::Tensor extra = model.regularization();
    if (extra.defined()) out.loss += extra.item<double>();
  }
  return out;
}

TrainOutcome Trainer::fit(const TensorSplit& train, const TensorSplit& val) {
  WholeImages source(train);
  return fit(source, val);
}

TrainOutcome Trainer::fit(BatchSource& train, const TensorSplit& val) {
  torch::set_num_threads(static_cast<int>(effective_threads(settings_.threads)));
  if (!started_) {
    torch::manual_seed(seed_);
    started_ = true;
  }
  if (parallel_) {
    // Every rank starts from rank 0's weights (they are built from the same seed; this
    // makes it so whatever a model's initialisation does).
    std::vector<torch::Tensor> state;
    for (auto& p : parts_.model->parameters()) state.push_back(p);
    for (auto& b : parts_.model->buffers()) state.push_back(b);
    parallel_->broadcast(state);
  }
  const auto start = Clock::now();
  for (auto& callback : callbacks_) callback->on_train_begin(*this);
  for (int64_t epoch = epochs_done() + 1; epoch <= settings_.epochs && !stopped_early(); ++epoch) {
    const auto epoch_start = Clock::now();
    for (auto& callback : callbacks_) callback->on_epoch_begin(*this, epoch, train);
    EpochRecord record;
    record.epoch = epoch;
    record.lr = parts_.optimizer->param_groups().front().options().get_lr();
    record.train = train_epoch(train, epoch);
    // The last batch's step can still overflow the weights with a finite loss.
    if (const std::string bad = first_non_finite(trained_state(*parts_.model)); !bad.empty())
      throw Error(fmt::format("training diverged in epoch {}: after its last batch the weights ({}) hold NaN or "
                              "infinite values. The likely cause is a learning rate too high for this model and "
                              "optimizer (lr {:g}); lower [optimizer] lr, e.g. tenfold",
                              epoch, bad, record.lr));
    record.val = {kNaN, kNaN, kNaN, kNaN};
    if (val.size() > 0) {
      Prediction p = validate_ ? validate_(val) : predict(val);
      record.val = {p.loss, accuracy(p.probabilities, val.labels), auroc_micro(p.probabilities, val.labels),
                    auroc_macro(p.probabilities, val.labels)};
    }
    record.seconds = seconds_since(epoch_start);
    history_.push_back(record);
    for (auto& callback : callbacks_) callback->on_epoch_end(*this, history_.back());
  }
  for (auto& callback : callbacks_) callback->on_train_end(*this);

  TrainOutcome out;
  out.history = history_;
  out.best_epoch = best_epoch();
  out.best_value = early_stopping_->best_value();
  out.stopped_early = stopped_early();
  out.seconds = seconds_since(start);
  return out;
}

nlohmann::json Trainer::state() const {
  nlohmann::json state = {{"epochs_done", epochs_done()}, {"history", history_to_json(history_)}};
  for (const auto& callback : callbacks_) callback->save_state(state);
  return state;
}

void Trainer::load_state(const nlohmann::json& state) {
  history_ = history_from_json(state.at("history"));
  for (auto& callback : callbacks_) callback->load_state(state);
}

bool Trainer::resume() {
  if (!checkpoints_ || !checkpoints_->resume(*this)) return false;
  started_ = true;
  return true;
}

void Trainer::load_weights(const fs::path& checkpoint) {
  load_checkpoint_weights(*parts_.model, checkpoint);
  parts_.model->to(device_);
}

}  // namespace bachlab::host
