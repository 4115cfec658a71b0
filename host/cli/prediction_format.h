#pragma once
// What `bachlab predict` reads and writes around the predictions themselves: the photos
// its arguments name, how it prints the predictions (--format) and where their heatmaps go.

#include "host/train/runner.h"

#include <filesystem>
#include <string>
#include <vector>

namespace bachlab::cli {

/// `predictions` as "table", "csv" or "json"; throws UsageError for another format.
std::string format_predictions(const std::vector<host::ImagePrediction>& predictions,
                               const std::vector<std::string>& classes, const std::string& format);

/// The photos `arguments` name: a file as given, a folder as every photo in it and its
/// subfolders (.tif, .tiff, .png, .jpg, .jpeg; hidden files left out), sorted. Throws Error
/// for a folder that holds none.
std::vector<std::filesystem::path> photos_to_predict(const std::vector<std::string>& arguments);

/// <dir>/<photo name>.heatmap.png for each of `photos`, one file each: photos of the same
/// name from different folders get their folder's name in front ("Benign-b001"), and a
/// number after it if that still repeats.
std::vector<std::filesystem::path> heatmap_files(const std::filesystem::path& dir,
                                                 const std::vector<std::filesystem::path>& photos);

}  // namespace bachlab::cli
