#pragma once
// Finding the photos of a dataset and their labels, checking everything that can be
// checked without decoding: the folders, the BACH ground-truth CSV against the files on
// disk, and each file's magic bytes against its extension.

#include "host/data/data_config.h"

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace bachlab::host {

struct Dataset {
  /// Class names; label i is classes[i].
  std::vector<std::string> classes;
  /// One photo per entry, sorted by class then file name.
  std::vector<std::filesystem::path> files;
  /// Class index of each file.
  std::vector<int64_t> labels;
  /// Group (patient or slide id) of each file, from the BACH ground-truth CSV's third
  /// column; empty when no row has one, "" for a file whose row has none.
  std::vector<std::string> groups;
  /// Files left out, as "file: reason" (bad photos with on_bad_image = "skip", and files
  /// in class folders that are not images at all).
  std::vector<std::string> skipped;
  /// The folder holding the class folders (Photos/ for BACH); files are written relative
  /// to it in split files.
  std::filesystem::path root;
};

/// The BACH ground-truth file name, looked for in the Photos folder.
inline constexpr const char* kBachGroundTruth = "microscopy_ground_truth.csv";

/// Lists the photos the config names. For source = "synthetic" the built-in set is first
/// generated into the cache folder (once per set of options). Throws one Error listing
/// every problem found: missing or unreadable folders, missing or empty classes, CSV rows
/// naming missing files or unknown labels, files missing from the CSV, and (unless
/// on_bad_image = "skip") files that are empty or whose content is not their extension.
Dataset discover_dataset(const DataConfig& config);

/// The folder the synthetic set for `config` lives in: <cache_dir>/synthetic-<options>.
std::filesystem::path synthetic_dataset_dir(const DataConfig& config);

/// What `bachlab check` says of the photos `config` names, as one line ("400 photos in
/// <root>: Normal 100, Benign 100, ..."): the same listing and checks as discover_dataset,
/// without decoding a photo, and without making the synthetic set (it says whether the
/// set is already made). Throws discover_dataset's Error when `run` would stop at the data.
std::string check_dataset(const DataConfig& config);

/// The subset of `dataset` at `indices` (in that order), keeping classes, root and skipped.
Dataset select(const Dataset& dataset, const std::vector<int64_t>& indices);

}  // namespace bachlab::host
