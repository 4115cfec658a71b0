#include "host/train/train_settings.h"

#include "host/config/config.h"

#include <bachlab/sdk/param_table.h>
#include <torch/torch.h>

#include <algorithm>
#include <thread>

namespace bachlab::host {

const std::vector<std::string>& monitorable_metrics() {
  static const std::vector<std::string> metrics = {
      "val_loss",   "val_accuracy",   "val_auroc_micro",   "val_auroc_macro",
      "train_loss", "train_accuracy", "train_auroc_micro", "train_auroc_macro"};
  return metrics;
}

bool larger_is_better(const std::string& metric) { return metric.find("loss") == std::string::npos; }

namespace {

// A key that only means something for one schedule type is an error elsewhere, rather
// than silently ignored: a user who writes step_size with type = "cosine" expects it to act.
void reject_unless(sdk::ParamTable& params, const std::string& key, ScheduleType type,
                   const std::vector<ScheduleType>& types) {
  if (!params.has(key) || std::find(types.begin(), types.end(), type) != types.end()) return;
  std::string list;
  for (const auto t : types) list += (list.empty() ? "type = \"" : "\" or \"") + kScheduleTypes.name(t);
  params.fail(key, "only applies to " + list + "\" (type is \"" + kScheduleTypes.name(type) +
                       "\"); remove it or change type");
}

}  // namespace

TrainSettings read_train_settings(sdk::ParamTable& train, sdk::ParamTable& early_stopping, sdk::ParamTable& schedule,
                                  sdk::ParamTable& feature_cache) {
  TrainSettings s;
  s.epochs = train.get_int("epochs", s.epochs, {1, 100000});
  s.batch_size = train.get_int("batch_size", s.batch_size, {1, 65536});
  s.threads = train.get_int("threads", s.threads, {0, 1024});
  s.device = train.get_string("device", s.device, {"cpu", "cuda"});
  if (s.device == "cuda" && !torch::cuda::is_available()) {
    train.fail("device", "must be \"cpu\": this LibTorch has no usable CUDA device (was \"cuda\"); set device = \"cpu\"");
    s.device = "cpu";
  }
  s.precision = kPrecisions.read(train, "precision", s.precision);
  s.channels_last = train.get_bool("channels_last", s.channels_last);
  s.refit = train.get_bool("refit", s.refit);
  s.label_smoothing = train.get_float("label_smoothing", s.label_smoothing, {0.0, 0.999});
  s.restore_best = train.get_bool("restore_best", s.restore_best);

  auto& es = s.early_stopping;
  es.monitor = early_stopping.get_string("monitor", es.monitor, monitorable_metrics());
  es.patience = early_stopping.get_int("patience", es.patience, {0, 100000});
  es.min_delta = early_stopping.get_float("min_delta", es.min_delta, {0.0, {}});

  auto& sc = s.schedule;
  sc.type = kScheduleTypes.read(schedule, "type", sc.type);
  sc.step_size = schedule.get_int("step_size", sc.step_size, {1, 100000});
  sc.gamma = schedule.get_float("gamma", sc.gamma, {1e-9, 1.0});
  sc.factor = schedule.get_float("factor", sc.factor, {1e-9, 0.999999});
  sc.patience = schedule.get_int("patience", sc.patience, {1, 100000});
  sc.monitor = schedule.get_string("monitor", sc.monitor, monitorable_metrics());
  sc.min_lr = schedule.get_float("min_lr", sc.min_lr, {0.0, {}});
  reject_unless(schedule, "step_size", sc.type, {ScheduleType::step});
  reject_unless(schedule, "gamma", sc.type, {ScheduleType::step});
  reject_unless(schedule, "factor", sc.type, {ScheduleType::plateau});
  reject_unless(schedule, "patience", sc.type, {ScheduleType::plateau});
  reject_unless(schedule, "monitor", sc.type, {ScheduleType::plateau});
  reject_unless(schedule, "min_lr", sc.type, {ScheduleType::cosine, ScheduleType::plateau});

  auto& fc = s.feature_cache;
  fc.augmented_copies = feature_cache.get_int("augmented_copies", fc.augmented_copies, {0, 1000});
  fc.disk = feature_cache.get_bool("disk", fc.disk);
  return s;
}

TrainSettings read_train_settings(Config& config) {
  TrainSettings s = read_train_settings(config.table("train"), config.table("train.early_stopping"),
                                        config.table("train.schedule"), config.table("train.feature_cache"));
  s.feature_cache.origin = config.path().string();
  return s;
}

int64_t effective_threads(int64_t threads) {
  if (threads > 0) return threads;
  return std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency()));
}

}  // namespace bachlab::host
