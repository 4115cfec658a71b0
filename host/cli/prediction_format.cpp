#include "host/cli/prediction_format.h"

#include "host/cli/commands.h"
#include "host/util/html.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>

namespace bachlab::cli {

using host::csv_field;

std::string format_predictions(const std::vector<host::ImagePrediction>& predictions,
                               const std::vector<std::string>& classes, const std::string& format) {
  std::string out;
  if (format == "json") {
    nlohmann::ordered_json array = nlohmann::ordered_json::array();
    for (const auto& p : predictions) {
      nlohmann::ordered_json probabilities;
      for (size_t c = 0; c < classes.size(); ++c) probabilities[classes[c]] = p.probabilities[c];
      array.push_back({{"image", p.image}, {"predicted", p.predicted}, {"probabilities", probabilities}});
    }
    return array.dump(2) + "\n";
  }
  if (format == "csv") {
    out = "image,predicted";
    for (const auto& c : classes) out += "," + csv_field(c);
    out += "\n";
    for (const auto& p : predictions) {
      out += csv_field(p.image) + "," + csv_field(p.predicted);
      for (double v : p.probabilities) out += fmt::format(",{:.6f}", v);
      out += "\n";
    }
    return out;
  }
  if (format != "table")
    throw UsageError("--format must be one of table, csv, json (was \"" + format + "\")");
  size_t image_width = 5, predicted_width = 9;
  for (const auto& p : predictions) {
    image_width = std::max(image_width, p.image.size());
    predicted_width = std::max(predicted_width, p.predicted.size());
  }
  out = fmt::format("{:<{}}  {:<{}}", "image", image_width, "predicted", predicted_width);
  for (const auto& c : classes) out += fmt::format("  {:>{}}", c, std::max<size_t>(c.size(), 6));
  out += "\n";
  for (const auto& p : predictions) {
    out += fmt::format("{:<{}}  {:<{}}", p.image, image_width, p.predicted, predicted_width);
    for (size_t c = 0; c < classes.size(); ++c)
      out += fmt::format("  {:>{}.4f}", p.probabilities[c], std::max<size_t>(classes[c].size(), 6));
    out += "\n";
  }
  return out;
}

}  // namespace bachlab::cli
