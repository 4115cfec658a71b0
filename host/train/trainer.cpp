#include "host/train/trainer.h"

#include "host/util/atomic_file.h"
#include "host/util/memory.h"

#include <bachlab/sdk/error.h>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <zlib.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <mutex>
#include <ostream>

namespace bachlab::host {

namespace fs = std::filesystem;
namespace F = torch::nn::functional;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// JSON has no NaN; null stands for it so a NaN metric survives a checkpoint round trip.
nlohmann::json number(double value) { return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(); }
double number(const nlohmann::json& j) { return j.is_null() ? kNaN : j.get<double>(); }

nlohmann::json to_json(const EpochMetrics& m) {
  return {{"loss", number(m.loss)},
          {"accuracy", number(m.accuracy)},
          {"auroc_micro", number(m.auroc_micro)},
          {"auroc_macro", number(m.auroc_macro)}};
}

EpochMetrics metrics_from_json(const nlohmann::json& j) {
  return {number(j.at("loss")), number(j.at("accuracy")), number(j.at("auroc_micro")), number(j.at("auroc_macro"))};
}

// True if `value` beats `reference` by more than `delta` in the metric's direction; any
// finite value beats a NaN reference (nothing seen yet).
bool improves(double value, double reference, bool larger, double delta = 0.0) {
  if (!std::isfinite(value)) return false;
  if (std::isnan(reference)) return true;
  return larger ? value > reference + delta : value < reference - delta;
}

at::Generator& default_generator() {
  return const_cast<at::Generator&>(at::detail::getDefaultCPUGenerator());
}

torch::Tensor generator_state(at::Generator& generator) {
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

void set_generator_state(at::Generator& generator, const torch::Tensor& state) {
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

std::vector<std::pair<std::string, torch::Tensor>> named_state(torch::nn::Module& module) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : module.named_parameters()) out.emplace_back(item.key(), item.value());
  for (const auto& item : module.named_buffers()) out.emplace_back(item.key(), item.value());
  return out;
}

bool all_finite(const torch::Tensor& tensor) {
  return !tensor.is_floating_point() || torch::isfinite(tensor).all().item<bool>();
}

// The first tensor of `module` holding a NaN or an infinity; "" if there is none.
std::string first_non_finite(torch::nn::Module& module) {
  for (auto& [name, tensor] : named_state(module))
    if (!all_finite(tensor.detach())) return name;
  return "";
}

// crc32 of the model's tensors (names, shapes and bytes) and the training state: stored in
// every checkpoint, so that a file damaged after it was written (a flipped byte loads
// without complaint from LibTorch) is refused instead of predicting garbage.
std::string content_checksum(torch::nn::Module& module, const std::string& state) {
  uLong crc = crc32_z(0, nullptr, 0);
  auto add = [&](const void* data, size_t size) { crc = crc32_z(crc, static_cast<const Bytef*>(data), size); };
  add(state.data(), state.size());
  for (auto& [name, tensor] : named_state(module)) {
    const torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
    add(name.data(), name.size());
    for (int64_t size : t.sizes()) add(&size, sizeof size);
    add(t.data_ptr(), t.numel() * t.element_size());
  }
  return fmt::format("crc32:{:08x}", crc);
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

}  // namespace

double metric_value(const EpochRecord& record, const std::string& metric) {
  const bool val = metric.rfind("val_", 0) == 0;
  const EpochMetrics& m = val ? record.val : record.train;
  const std::string name = metric.substr(metric.find('_') + 1);
  if (name == "loss") return m.loss;
  if (name == "accuracy") return m.accuracy;
  if (name == "auroc_micro") return m.auroc_micro;
  if (name == "auroc_macro") return m.auroc_macro;
  throw Error("unknown metric \"" + metric + "\"; expected one of val_loss, val_accuracy, val_auroc_micro, "
              "val_auroc_macro and the same with train_");
}

Trainer::Trainer(TrainerParts parts, TrainSettings settings, uint64_t seed, BatchTransform normalize)
    : parts_(std::move(parts)),
      settings_(std::move(settings)),
      seed_(seed),
      normalize_(std::move(normalize)),
      device_(settings_.device),
      // A different stream from the default generator's, which is seeded with `seed` too.
      generator_(at::make_generator<at::CPUGeneratorImpl>(seed ^ 0x9E3779B97F4A7C15ULL)),
      feature_cache_(settings_.feature_cache),
      best_value_(kNaN),
      stop_best_(kNaN),
      plateau_best_(kNaN) {
  TORCH_CHECK(parts_.model && parts_.optimizer, "Trainer needs a model and an optimizer");
  // Every batch frees and allocates the same large buffers again; see memory.h.
  reuse_freed_memory();
  if (parts_.base_lrs.empty())
    for (auto& group : parts_.optimizer->param_groups()) parts_.base_lrs.push_back(group.options().get_lr());
  TORCH_CHECK(parts_.base_lrs.size() == parts_.optimizer->param_groups().size(),
              "Trainer: one base learning rate per optimizer param group is needed");
  parts_.model->to(device_);
  feature_inputs_.transform = normalize_;
  feature_inputs_.augmentations = parts_.augmentations;
  feature_inputs_.augmentations_key = parts_.augmentations_key;
  feature_inputs_.seed = seed_;
  feature_inputs_.batch_size = settings_.batch_size;
}

void Trainer::set_checkpoint_dir(const fs::path& folder) { checkpoint_dir_ = folder; }

void Trainer::set_progress(std::ostream* out, bool interactive) {
  progress_ = out;
  interactive_ = interactive;
}

void Trainer::set_batch_hook(std::function<void(int64_t, int64_t)> hook) { batch_hook_ = std::move(hook); }

torch::Tensor Trainer::to_unit(const torch::Tensor& batch) const {
  if (batch.scalar_type() == torch::kUInt8) return batch.to(torch::kFloat32).div_(255.0);
  return batch;
}

// Epoch 0 asks for the un-augmented features (validation, test, predict).
torch::Tensor Trainer::cached_features(const torch::Tensor& images, int64_t epoch) {
  const auto start = Clock::now();
  torch::Tensor features = epoch == 0 ? feature_cache_.features(*parts_.model, images, feature_inputs_, 0)
                                      : feature_cache_.training_features(*parts_.model, images, feature_inputs_, epoch);
  // A backbone pass or a disk read is worth a line (it can take minutes); memory hits are not.
  if (progress_ && feature_cache_.last_note() != "memory")
    *progress_ << (interactive_ ? "\r" : "")
               << fmt::format("features of {} images{}: {}, {:.1f}s", images.size(0),
                              epoch > 0 && !parts_.augmentations.empty() ? " (augmented copy)" : "",
                              feature_cache_.last_note(), seconds_since(start))
               << (interactive_ ? "\x1b[K\n" : "\n") << std::flush;
  return features;
}

void Trainer::apply_learning_rate(int64_t epoch) {
  const auto& sc = settings_.schedule;
  auto& groups = parts_.optimizer->param_groups();
  for (size_t g = 0; g < groups.size(); ++g) {
    const double base = parts_.base_lrs[g];
    double lr = base;
    if (sc.type == "step") {
      lr = base * std::pow(sc.gamma, static_cast<double>((epoch - 1) / sc.step_size));
    } else if (sc.type == "cosine") {
      const double progress = static_cast<double>(epoch - 1) / static_cast<double>(settings_.epochs);
      lr = sc.min_lr + (base - sc.min_lr) * 0.5 * (1.0 + std::cos(M_PI * progress));
    } else if (sc.type == "plateau") {
      lr = std::max(base * lr_factor_, sc.min_lr);
    }
    groups[g].options().set_lr(lr);
  }
}

EpochMetrics Trainer::train_epoch(const TensorSplit& train, int64_t epoch) {
  WholeImages source(train);
  return train_epoch(source, epoch);
}

EpochMetrics Trainer::train_epoch(BatchSource& train, int64_t epoch) {
  auto& model = *parts_.model;
  auto& optimizer = *parts_.optimizer;
  model.train();
  const int64_t n = train.start_epoch(generator_);
  const int64_t batch_size = settings_.batch_size;
  const int64_t batches = (n + batch_size - 1) / batch_size;
  const auto loss_options = F::CrossEntropyFuncOptions().label_smoothing(settings_.label_smoothing);
  // Frozen backbone: the epoch's features, computed once; only the head runs per batch.
  const bool frozen = model.has_frozen_features();
  if (frozen && !train.whole_images())
    throw Error("a model with a frozen backbone trains on whole images only (its features are cached per image); "
                "set [data.patches] size = 0 or fine-tune the backbone");
  const torch::Tensor features = frozen ? cached_features(train.whole_images()->images, epoch) : torch::Tensor();

  std::vector<torch::Tensor> probabilities;
  std::vector<torch::Tensor> labels;
  probabilities.reserve(batches);
  labels.reserve(batches);
  double loss_sum = 0;
  auto last_draw = Clock::now();
  const auto start = last_draw;
  for (int64_t b = 0; b < batches; ++b) {
    const Batch batch = train.batch(b * batch_size, std::min(n, (b + 1) * batch_size));
    torch::Tensor y = batch.labels.to(device_);
    torch::Tensor logits, x;
    if (frozen) {
      x = features.index_select(0, batch.rows);
      logits = model.head(x.to(device_));
    } else {
      x = to_unit(batch.images);
      for (const auto& augmentation : parts_.augmentations) x = augmentation->apply(x, generator_);
      logits = model.forward(normalize_(x).to(device_));
    }
    torch::Tensor loss = F::cross_entropy(logits, y, loss_options);
    torch::Tensor extra = model.regularization();
    if (extra.defined()) loss = loss + extra;
    // Stop at the first non-finite loss: a step on it would make every weight NaN, and
    // everything after (metrics, checkpoints, predictions) would be meaningless.
    const double loss_value = loss.item<double>();
    if (!std::isfinite(loss_value))
      throw Error(divergence_message(epoch, b, batches, loss_value, all_finite(x),
                                     optimizer.param_groups().front().options().get_lr()));
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();

    loss_sum += loss_value * static_cast<double>(batch.labels.size(0));
    probabilities.push_back(torch::softmax(logits.detach(), 1).to(torch::kCPU));
    labels.push_back(y.to(torch::kCPU));
    if (batch_hook_) batch_hook_(epoch, b);
    if (progress_ && interactive_ && (seconds_since(last_draw) > 0.1 || b + 1 == batches)) {
      last_draw = Clock::now();
      constexpr int kWidth = 30;
      const int filled = static_cast<int>(kWidth * (b + 1) / batches);
      *progress_ << fmt::format("\repoch {}/{} [{}{}] {}/{} loss {:.4f} {:.0f}s\x1b[K", epoch, settings_.epochs,
                                std::string(filled, '#'), std::string(kWidth - filled, '.'), b + 1, batches,
                                loss_sum / static_cast<double>(std::min(n, (b + 1) * batch_size)),
                                seconds_since(start))
                 << std::flush;
    }
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
  const bool frozen = model.has_frozen_features();
  const torch::Tensor features = frozen ? cached_features(data.images, 0) : torch::Tensor();
  std::vector<torch::Tensor> probabilities;
  double loss_sum = 0;
  for (int64_t start = 0; start < n; start += settings_.batch_size) {
    const int64_t end = std::min(n, start + settings_.batch_size);
    torch::Tensor logits = frozen ? model.head(features.slice(0, start, end).to(device_))
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

void Trainer::after_epoch(const EpochRecord& record) {
  history_.push_back(record);
  const auto& es = settings_.early_stopping;
  const double value = metric_value(record, es.monitor);
  const bool larger = larger_is_better(es.monitor);
  if (improves(value, best_value_, larger)) {
    best_value_ = value;
    best_epoch_ = record.epoch;
    best_weights_.clear();
    for (auto& [name, tensor] : named_state(*parts_.model)) best_weights_.emplace_back(name, tensor.detach().clone());
    if (!checkpoint_dir_.empty()) save_checkpoint(checkpoint_dir_ / "best.pt", false);
  }
  if (es.patience > 0) {
    if (improves(value, stop_best_, larger, es.min_delta)) {
      stop_best_ = value;
      stop_wait_ = 0;
    } else if (++stop_wait_ >= es.patience) {
      stopped_early_ = true;
    }
  }
  const auto& sc = settings_.schedule;
  if (sc.type == "plateau") {
    const double watched = metric_value(record, sc.monitor);
    if (improves(watched, plateau_best_, larger_is_better(sc.monitor))) {
      plateau_best_ = watched;
      plateau_wait_ = 0;
    } else if (++plateau_wait_ >= sc.patience) {
      lr_factor_ *= sc.factor;
      plateau_wait_ = 0;
    }
  }
}

void Trainer::report(const EpochRecord& r) const {
  if (!progress_) return;
  std::string line = fmt::format("epoch {}/{}  loss {:.4f} acc {:.4f} auroc_micro {:.4f}", r.epoch, settings_.epochs,
                                 r.train.loss, r.train.accuracy, r.train.auroc_micro);
  if (!std::isnan(r.val.loss))
    line += fmt::format("  val_loss {:.4f} val_acc {:.4f} val_auroc_micro {:.4f}", r.val.loss, r.val.accuracy,
                        r.val.auroc_micro);
  line += fmt::format("  lr {:.3g}  {:.1f}s", r.lr, r.seconds);
  if (best_epoch_ == r.epoch) line += "  *best*";
  if (stopped_early_) line += "  (early stop)";
  *progress_ << (interactive_ ? "\r" : "") << line << (interactive_ ? "\x1b[K\n" : "\n") << std::flush;
}

void Trainer::set_validation(std::function<Prediction(const TensorSplit&)> validate) {
  validate_ = std::move(validate);
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
  if (!checkpoint_dir_.empty()) {
    fs::create_directories(checkpoint_dir_);
    // Checkpoints can be large; those half-written by killed runs would pile up.
    remove_orphaned_temp_files(checkpoint_dir_);
  }
  const auto start = Clock::now();
  for (int64_t epoch = epochs_done() + 1; epoch <= settings_.epochs && !stopped_early_; ++epoch) {
    const auto epoch_start = Clock::now();
    apply_learning_rate(epoch);
    EpochRecord record;
    record.epoch = epoch;
    record.lr = parts_.optimizer->param_groups().front().options().get_lr();
    record.train = train_epoch(train, epoch);
    // The last batch's step can still overflow the weights with a finite loss.
    if (const std::string bad = first_non_finite(*parts_.model); !bad.empty())
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
    after_epoch(record);
    if (!checkpoint_dir_.empty()) save_checkpoint(checkpoint_dir_ / "last.pt", true);
    report(record);
  }

  if (settings_.restore_best && !best_weights_.empty()) {
    torch::NoGradGuard no_grad;
    auto current = named_state(*parts_.model);
    for (size_t i = 0; i < current.size(); ++i) current[i].second.copy_(best_weights_[i].second);
  }
  TrainOutcome out;
  out.history = history_;
  out.best_epoch = best_epoch_;
  out.best_value = best_value_;
  out.stopped_early = stopped_early_;
  out.seconds = seconds_since(start);
  return out;
}

std::string Trainer::state_json() const {
  nlohmann::json history = nlohmann::json::array();
  for (const auto& r : history_)
    history.push_back({{"epoch", r.epoch},
                       {"lr", r.lr},
                       {"train", to_json(r.train)},
                       {"val", to_json(r.val)},
                       {"seconds", r.seconds}});
  nlohmann::json state = {{"epochs_done", epochs_done()},
                          {"history", history},
                          {"best_epoch", best_epoch_},
                          {"best_value", number(best_value_)},
                          {"stop_best", number(stop_best_)},
                          {"stop_wait", stop_wait_},
                          {"stopped_early", stopped_early_},
                          {"lr_factor", lr_factor_},
                          {"plateau_best", number(plateau_best_)},
                          {"plateau_wait", plateau_wait_}};
  return state.dump();
}

void Trainer::load_state_json(const std::string& text) {
  auto state = nlohmann::json::parse(text);
  history_.clear();
  for (const auto& r : state.at("history")) {
    EpochRecord record;
    record.epoch = r.at("epoch").get<int64_t>();
    record.lr = r.at("lr").get<double>();
    record.train = metrics_from_json(r.at("train"));
    record.val = metrics_from_json(r.at("val"));
    record.seconds = r.at("seconds").get<double>();
    history_.push_back(record);
  }
  best_epoch_ = state.at("best_epoch").get<int64_t>();
  best_value_ = number(state.at("best_value"));
  stop_best_ = number(state.at("stop_best"));
  stop_wait_ = state.at("stop_wait").get<int64_t>();
  stopped_early_ = state.at("stopped_early").get<bool>();
  lr_factor_ = state.at("lr_factor").get<double>();
  plateau_best_ = number(state.at("plateau_best"));
  plateau_wait_ = state.at("plateau_wait").get<int64_t>();
}

void Trainer::save_checkpoint(const fs::path& file, bool full) const {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive model_archive;
  parts_.model->save(model_archive);
  archive.write("model", model_archive);
  const std::string state = state_json();
  archive.write("state", c10::IValue(state));
  archive.write("checksum", c10::IValue(content_checksum(*parts_.model, state)));
  if (full) {
    torch::serialize::OutputArchive optimizer_archive;
    parts_.optimizer->save(optimizer_archive);
    archive.write("optimizer", optimizer_archive);
    archive.write("generator", generator_state(const_cast<torch::Generator&>(generator_)));
    archive.write("default_generator", generator_state(default_generator()));
  }
  write_archive_atomic(file, archive);
}

namespace {

std::string shape_text(const std::vector<int64_t>& sizes) {
  std::string out = "[";
  for (size_t i = 0; i < sizes.size(); ++i) out += (i ? ", " : "") + std::to_string(sizes[i]);
  return out + "]";
}

// Module::load replaces tensors wholesale, so a checkpoint of another architecture would
// load "successfully"; compare every shape first and say which tensor differs.
void load_model(torch::nn::Module& model, torch::serialize::InputArchive& archive, const fs::path& file) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> expected;
  for (auto& [name, tensor] : named_state(model)) expected.emplace_back(name, tensor.sizes().vec());
  for (const auto& [name, sizes] : expected) {
    torch::Tensor stored;
    // Nested modules are nested archives; walk the dotted name down to the tensor.
    torch::serialize::InputArchive* current = &archive;
    std::vector<torch::serialize::InputArchive> chain;
    chain.reserve(16);
    std::string rest = name;
    for (auto dot = rest.find('.'); dot != std::string::npos; dot = rest.find('.')) {
      chain.emplace_back();
      if (!current->try_read(rest.substr(0, dot), chain.back()))
        throw Error(file.string() + ": checkpoint has no tensor \"" + name +
                    "\" of this model; it belongs to a different model or config. Resume with the run folder "
                    "that wrote it, or start a new run");
      current = &chain.back();
      rest = rest.substr(dot + 1);
    }
    if (!current->try_read(rest, stored) && !current->try_read(rest, stored, true))
      throw Error(file.string() + ": checkpoint has no tensor \"" + name +
                  "\" of this model; it belongs to a different model or config. Resume with the run folder that "
                  "wrote it, or start a new run");
    if (stored.sizes().vec() != sizes)
      throw Error(file.string() + ": tensor \"" + name + "\" has shape " + shape_text(stored.sizes().vec()) +
                  " in the checkpoint but " + shape_text(sizes) +
                  " in the model; the checkpoint belongs to a different model or config. Resume with the run "
                  "folder that wrote it, or start a new run");
  }
  model.load(archive);
}

// Reads checkpoint `file` and loads its "model" part into `model`, then checks what was
// loaded: every tensor finite, and the model with the training state matching the checksum
// the file was written with. Returns the whole archive for the caller's other parts
// (optimizer, generators); `state` receives the training state's JSON text.
torch::serialize::InputArchive load_checkpoint_model(torch::nn::Module& model, const fs::path& file,
                                                     std::string* state = nullptr) {
  torch::serialize::InputArchive archive;
  archive.load_from(file.string());
  torch::serialize::InputArchive model_archive;
  archive.read("model", model_archive);
  load_model(model, model_archive, file);
  c10::IValue state_value, stored;
  archive.read("state", state_value);
  if (!archive.try_read("checksum", stored) || !stored.isString())
    throw Error(file.string() + ": this checkpoint has no checksum (it was written by an older bachlab, or damaged); "
                "its content cannot be trusted. Start a new run");
  if (const std::string bad = first_non_finite(model); !bad.empty())
    throw Error(file.string() + ": tensor \"" + bad + "\" of this checkpoint holds NaN or infinite values; it was "
                "damaged or saved from a diverged run. Start a new run");
  const std::string computed = content_checksum(model, state_value.toStringRef());
  if (computed != stored.toStringRef())
    throw Error(file.string() + ": this checkpoint's content does not match its checksum (" + stored.toStringRef() +
                " stored, " + computed + " computed); the file is damaged. Resume from a copy, or start a new run");
  if (state) *state = state_value.toStringRef();
  return archive;
}

}  // namespace

void Trainer::load_weights(const fs::path& checkpoint) {
  if (!fs::exists(checkpoint))
    throw Error(checkpoint.string() + ": no such checkpoint; the run never finished an epoch. Resume it with "
                "`bachlab run --resume RUN_DIR` or start a new run");
  try {
    load_checkpoint_model(*parts_.model, checkpoint);
    parts_.model->to(device_);
  } catch (const c10::Error& e) {
    throw Error(checkpoint.string() + ": cannot read this checkpoint (" + e.what_without_backtrace() +
                "); it is damaged or was written by another version");
  }
}

bool Trainer::resume() {
  if (checkpoint_dir_.empty()) return false;
  const fs::path last = checkpoint_dir_ / "last.pt";
  const fs::path best = checkpoint_dir_ / "best.pt";
  if (!fs::exists(last)) return false;
  if (fs::exists(best)) {
    try {
      load_checkpoint_model(*parts_.model, best);
    } catch (const c10::Error& e) {
      throw Error(best.string() + ": cannot resume from this checkpoint (" + e.what_without_backtrace() +
                  "); it is damaged or was written by another version. Start a new run without --resume");
    }
    best_weights_.clear();
    for (auto& [name, tensor] : named_state(*parts_.model)) best_weights_.emplace_back(name, tensor.detach().clone());
  }
  try {
    std::string state_text;
    torch::serialize::InputArchive archive = load_checkpoint_model(*parts_.model, last, &state_text);
    parts_.model->to(device_);
    torch::serialize::InputArchive optimizer_archive;
    archive.read("optimizer", optimizer_archive);
    parts_.optimizer->load(optimizer_archive);
    torch::Tensor state;
    archive.read("generator", state);
    set_generator_state(generator_, state);
    archive.read("default_generator", state);
    set_generator_state(default_generator(), state);
    load_state_json(state_text);
  } catch (const c10::Error& e) {
    throw Error(last.string() + ": cannot resume from this checkpoint (" + e.what_without_backtrace() +
                "); it is damaged or was written by another version. Start a new run without --resume");
  } catch (const nlohmann::json::exception& e) {
    throw Error(last.string() + ": the training state in this checkpoint is unreadable (" + std::string(e.what()) +
                "). Start a new run without --resume");
  }
  started_ = true;
  return true;
}

}  // namespace bachlab::host
