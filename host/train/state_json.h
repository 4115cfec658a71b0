#pragma once
// Pieces of the training state a checkpoint stores as JSON (see Trainer::state()).

#include "host/eval/history.h"

#include <nlohmann/json_fwd.hpp>

#include <vector>

namespace bachlab::host {

/// A number for a checkpoint's JSON state: JSON has no NaN, so null stands for it and a NaN
/// metric survives the round trip.
nlohmann::json nullable_number(double value);
double nullable_number(const nlohmann::json& value);

/// The history as a checkpoint's state stores it, and back.
nlohmann::json history_to_json(const std::vector<EpochRecord>& history);
std::vector<EpochRecord> history_from_json(const nlohmann::json& history);

}  // namespace bachlab::host
