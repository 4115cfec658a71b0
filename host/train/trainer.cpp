#include "host/train/trainer.h"

#include "host/train/checkpoints.h"
#include "host/train/data_parallel.h"
#include "host/train/state_json.h"
#include "host/train/lr_schedule.h"
#include "host/train/model_state.h"
#include "host/train/precision.h"
#include "host/train/progress.h"
#include "host/util/interrupt.h"
#include "host/util/memory.h"

#include <bachlab/sdk/error.h>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace bachlab::host {

namespace fs = std::filesystem;
namespace F = torch::nn::functional;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The likely cause of a divergence, and what to change.
std::string learning_rate_advice(double lr) {
  return fmt::format("The likely cause is a learning rate too high for this model and optimizer (lr {:g}); lower "
                     "[optimizer] lr, e.g. tenfold",
                     lr);
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
  return where + fmt::format("the loss is {}. ", loss) + learning_rate_advice(lr);
}

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
  if (settings_.channels_last) to_channels_last(*parts_.model);
  pixels_ = std::make_shared<PixelInputs>(normalize_, parts_.augmentations, device_, settings_.channels_last);
  inputs_ = pixels_;
  early_stopping_ = std::make_shared<EarlyStopping>(settings_.early_stopping, settings_.restore_best);
  add_callback(early_stopping_);
  add_callback(std::make_shared<LearningRateSchedule>(settings_.schedule, settings_.epochs, std::move(base_lrs)));
  if (settings_.precision != Precision::fp32) add_callback(std::make_shared<MixedPrecision>(settings_.precision));
  if (parts_.model->frozen_features() != nullptr) {
    FeatureInputs inputs;
    inputs.transform = normalize_;
    inputs.augmentations = parts_.augmentations;
    inputs.augmentations_key = parts_.augmentations_key;
    inputs.seed = seed_;
    inputs.batch_size = settings_.batch_size;
    cached_features_ = std::make_shared<CachedFeatures>(settings_.feature_cache, std::move(inputs), device_);
    add_callback(cached_features_);
    inputs_ = cached_features_;
  }
}

void Trainer::add_callback(std::shared_ptr<TrainingCallback> callback) {
  if (const std::string key = callback->state_key(); !key.empty())
    for (const auto& other : callbacks_)
      if (other->state_key() == key)
        throw std::invalid_argument("two training callbacks save their state under the key \"" + key + "\"");
  callbacks_.push_back(std::move(callback));
}

void Trainer::request_stop(std::string reason) {
  if (stop_reason_.empty()) stop_reason_ = reason.empty() ? "stopped by a callback" : std::move(reason);
}

void Trainer::set_checkpoint_dir(const fs::path& folder) {
  checkpoints_ = std::make_shared<Checkpoints>(folder);
  checkpoints_->set_writing(strategy_->writes_checkpoints());
}

void Trainer::set_data_parallel(std::shared_ptr<DataParallel> parallel) {
  strategy_ = std::make_shared<DataParallelStep>(std::move(parallel));
  if (checkpoints_) checkpoints_->set_writing(strategy_->writes_checkpoints());
}

void Trainer::set_progress(std::ostream* out, bool interactive) {
  if (!out) return;
  auto progress = std::make_shared<ProgressOutput>(*out, interactive);
  if (cached_features_) cached_features_->set_progress(progress);
  add_callback(progress);
}

const FeatureCacheStats& Trainer::feature_cache_stats() const {
  static const FeatureCacheStats none;
  return cached_features_ ? cached_features_->stats() : none;
}

EpochMetrics Trainer::train_epoch(const TensorSplit& train, int64_t epoch) {
  WholeImages source(train);
  return train_epoch(source, epoch);
}

EpochMetrics Trainer::train_epoch(BatchSource& train, int64_t epoch) {
  auto& model = *parts_.model;
  auto& optimizer = *parts_.optimizer;
  model.train();
  BatchSource& source = inputs_->epoch_batches(model, train, epoch);
  const int64_t n = source.start_epoch(generator_);
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
    // Ctrl-C (host/util/interrupt.h): stop between two batches; the epochs before this one
    // are in the checkpoint.
    if (const int signal = interrupt_signal())
      throw Interrupted(signal, fmt::format("in epoch {} of {}", epoch, settings_.epochs));
    const Batch batch = source.batch(b * batch_size, std::min(n, (b + 1) * batch_size));
    const int64_t rows = batch.labels.size(0);
    for (auto& callback : callbacks_) callback->on_batch_begin(*this, BatchBegin{epoch, b, batches});
    const auto [begin, end] = strategy_->shard(rows);
    const torch::Tensor x = inputs_->training_batch(batch.images, generator_).slice(0, begin, end);
    const torch::Tensor y = batch.labels.slice(0, begin, end).to(device_);
    const torch::Tensor batch_logits = inputs_->logits(model, x);
    const torch::Tensor objective = strategy_->objective(F::cross_entropy(batch_logits, y, loss_options), batch_logits,
                                                         model.regularization(), y.size(0), rows);
    for (auto& callback : callbacks_) callback->on_before_backward(*this);
    optimizer.zero_grad();
    objective.backward();
    const double loss_value = strategy_->reduce(model, objective);
    // Stop at the first non-finite loss: a step on it would make every weight NaN, and
    // everything after (metrics, checkpoints, predictions) would be meaningless.
    if (!std::isfinite(loss_value))
      throw Error(divergence_message(epoch, b, batches, loss_value, all_finite(x),
                                     optimizer.param_groups().front().options().get_lr()));
    for (auto& callback : callbacks_) callback->on_before_optimizer_step(*this);
    optimizer.step();

    loss_sum += loss_value * static_cast<double>(rows);
    probabilities.push_back(strategy_->gather(torch::softmax(batch_logits.detach(), 1).to(torch::kCPU), rows));
    labels.push_back(batch.labels.to(torch::kCPU));
    const BatchEnd end_of_batch{epoch, b, batches, loss_sum / static_cast<double>(std::min(n, (b + 1) * batch_size)),
                                seconds_since(start)};
    for (auto& callback : callbacks_) callback->on_batch_end(*this, end_of_batch);
  }
  if (n == 0) return {kNaN, kNaN, kNaN, kNaN};
  torch::Tensor p = torch::cat(probabilities);
  torch::Tensor t = torch::cat(labels);
  return {loss_sum / static_cast<double>(n), accuracy(p, t), auroc_micro(p, t), auroc_macro(p, t)};
}

torch::Tensor Trainer::unit_batch_probabilities(const torch::Tensor& unit_batch) {
  parts_.model->eval();
  return torch::softmax(pixels_->logits(*parts_.model, unit_batch), 1);
}

Prediction Trainer::predict(const TensorSplit& data) {
  auto& model = *parts_.model;
  model.eval();
  torch::NoGradGuard no_grad;
  AutocastScope autocast(settings_.precision, device_);
  const int64_t n = data.images.size(0);
  const bool has_labels = data.labels.defined();
  const auto loss_options = F::CrossEntropyFuncOptions()
                                .label_smoothing(settings_.label_smoothing)
                                .reduction(torch::kSum);
  const torch::Tensor inputs = inputs_->prediction_inputs(model, data.images);
  std::vector<torch::Tensor> probabilities;
  double loss_sum = 0;
  for (int64_t start = 0; start < n; start += settings_.batch_size) {
    const int64_t end = std::min(n, start + settings_.batch_size);
    const torch::Tensor batch_logits = inputs_->logits(model, inputs.slice(0, start, end));
    if (has_labels)
      loss_sum +=
          F::cross_entropy(batch_logits, data.labels.slice(0, start, end).to(device_), loss_options).item<double>();
    probabilities.push_back(torch::softmax(batch_logits, 1).to(torch::kCPU));
  }
  Prediction out;
  out.probabilities = probabilities.empty() ? torch::empty({0, 0}) : torch::cat(probabilities);
  // A model whose outputs are not numbers has diverged even when its training loss looked
  // finite (a last step that overflowed, weights restored from a bad epoch): no accuracy,
  // checkpoint choice or prediction may be made of them.
  if (const int64_t bad = n - out.probabilities.isfinite().all(1).sum().item<int64_t>(); bad > 0)
    throw Error(fmt::format("the model's class probabilities are not finite (NaN or infinite) for {} of {} inputs: "
                            "the model has diverged. ",
                            bad, n) +
                learning_rate_advice(parts_.optimizer->param_groups().front().options().get_lr()));
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
  strategy_->start(*parts_.model);
  const auto start = Clock::now();
  if (checkpoints_) checkpoints_->prepare();
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
                              "infinite values. ",
                              epoch, bad) +
                  learning_rate_advice(record.lr));
    record.val = {kNaN, kNaN, kNaN, kNaN};
    if (val.size() > 0) {
      Prediction p = parts_.validation ? parts_.validation(*this, val) : predict(val);
      record.val = {p.loss, accuracy(p.probabilities, val.labels), auroc_micro(p.probabilities, val.labels),
                    auroc_macro(p.probabilities, val.labels)};
    }
    record.seconds = seconds_since(epoch_start);
    history_.push_back(record);
    for (auto& callback : callbacks_) callback->on_epoch_end(*this, history_.back());
    // After every callback, so that the checkpoint holds their state of this epoch.
    if (checkpoints_) checkpoints_->write(*this, history_.back());
  }
  for (auto& callback : callbacks_) callback->on_train_end(*this);

  TrainOutcome out;
  out.history = history_;
  out.best_epoch = best_epoch();
  out.best_value = early_stopping_->best_value();
  out.stopped_early = stopped_early();
  out.stop_reason = stop_reason_;
  out.seconds = seconds_since(start);
  return out;
}

nlohmann::json Trainer::state() const {
  nlohmann::json state = {{"epochs_done", epochs_done()},
                          {"history", history_to_json(history_)},
                          {"stop_reason", stop_reason_},
                          {"callbacks", nlohmann::json::object()}};
  for (const auto& callback : callbacks_)
    if (const std::string key = callback->state_key(); !key.empty()) {
      nlohmann::json own = nlohmann::json::object();
      callback->save_state(own);
      state["callbacks"][key] = std::move(own);
    }
  return state;
}

void Trainer::load_state(const nlohmann::json& state) {
  history_ = history_from_json(state.at("history"));
  if (state.contains("callbacks")) {
    stop_reason_ = state.at("stop_reason").get<std::string>();
    const nlohmann::json& saved = state.at("callbacks");
    // A callback added since the checkpoint was written starts from its initial state.
    for (auto& callback : callbacks_)
      if (const std::string key = callback->state_key(); !key.empty() && saved.contains(key))
        callback->load_state(saved.at(key));
    return;
  }
  // Written before callbacks had keys: one flat object, whose stop was early stopping's.
  for (auto& callback : callbacks_)
    if (!callback->state_key().empty()) callback->load_state(state);
  stop_reason_ = state.at("stopped_early").get<bool>() ? early_stopping_->stop_reason() : std::string();
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
