#include "host/train/state_json.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>

namespace bachlab::host {

nlohmann::json nullable_number(double value) {
  return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json();
}

double nullable_number(const nlohmann::json& value) {
  return value.is_null() ? std::numeric_limits<double>::quiet_NaN() : value.get<double>();
}

namespace {

nlohmann::json to_json(const EpochMetrics& m) {
  return {{"loss", nullable_number(m.loss)},
          {"accuracy", nullable_number(m.accuracy)},
          {"auroc_micro", nullable_number(m.auroc_micro)},
          {"auroc_macro", nullable_number(m.auroc_macro)}};
}

EpochMetrics metrics_from_json(const nlohmann::json& j) {
  return {nullable_number(j.at("loss")), nullable_number(j.at("accuracy")), nullable_number(j.at("auroc_micro")),
          nullable_number(j.at("auroc_macro"))};
}

}  // namespace

nlohmann::json history_to_json(const std::vector<EpochRecord>& history) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : history)
    out.push_back({{"epoch", r.epoch},
                   {"lr", r.lr},
                   {"train", to_json(r.train)},
                   {"val", to_json(r.val)},
                   {"seconds", r.seconds}});
  return out;
}

std::vector<EpochRecord> history_from_json(const nlohmann::json& history) {
  std::vector<EpochRecord> out;
  for (const auto& r : history) {
    EpochRecord record;
    record.epoch = r.at("epoch").get<int64_t>();
    record.lr = r.at("lr").get<double>();
    record.train = metrics_from_json(r.at("train"));
    record.val = metrics_from_json(r.at("val"));
    record.seconds = r.at("seconds").get<double>();
    out.push_back(record);
  }
  return out;
}

}  // namespace bachlab::host
