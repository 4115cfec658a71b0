#pragma once
// How `bachlab predict` prints its predictions (--format).

#include "host/train/runner.h"

#include <string>
#include <vector>

namespace bachlab::cli {

/// `predictions` as "table", "csv" or "json"; throws UsageError for another format.
std::string format_predictions(const std::vector<host::ImagePrediction>& predictions,
                               const std::vector<std::string>& classes, const std::string& format);

}  // namespace bachlab::cli
