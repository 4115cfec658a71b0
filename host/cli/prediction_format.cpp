#include "host/cli/prediction_format.h"

#include "host/cli/commands.h"
#include "host/data/image_decode.h"
#include "host/util/html.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <set>

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

namespace fs = std::filesystem;

std::vector<fs::path> photos_to_predict(const std::vector<std::string>& arguments) {
  std::vector<fs::path> photos;
  for (const auto& argument : arguments) {
    std::error_code error;
    if (!fs::is_directory(argument, error)) {
      photos.emplace_back(argument);
      continue;
    }
    std::vector<fs::path> found;
    fs::recursive_directory_iterator it(argument, error), end;
    for (; !error && it != end; it.increment(error)) {
      const std::string name = it->path().filename().string();
      if (!name.empty() && name.front() == '.') {
        if (it->is_directory(error)) it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file(error) && host::has_image_extension(it->path())) found.push_back(it->path());
    }
    if (error) throw Error(argument + ": cannot list the folder (" + error.message() + "); check its permissions");
    if (found.empty())
      throw Error(argument + ": the folder holds no photos (.tif, .tiff, .png, .jpg, .jpeg), nor do its subfolders");
    std::sort(found.begin(), found.end());
    photos.insert(photos.end(), found.begin(), found.end());
  }
  return photos;
}

std::vector<fs::path> heatmap_files(const fs::path& dir, const std::vector<fs::path>& photos) {
  std::map<std::string, int> stems;
  for (const auto& photo : photos) ++stems[photo.stem().string()];
  std::vector<fs::path> files;
  std::set<std::string> taken;
  for (const auto& photo : photos) {
    std::string name = photo.stem().string();
    if (stems[name] > 1 && photo.has_parent_path()) {
      const std::string folder = fs::absolute(photo).parent_path().filename().string();
      if (!folder.empty()) name = folder + "-" + name;
    }
    std::string unique = name;
    for (int n = 2; taken.count(unique); ++n) unique = name + "-" + std::to_string(n);
    taken.insert(unique);
    files.push_back(dir / (unique + ".heatmap.png"));
  }
  return files;
}

}  // namespace bachlab::cli
