#pragma once
// The BACH ground-truth CSV (Photos/microscopy_ground_truth.csv, rows <file>,<Class>[,<group>]) read
// from its text and checked against the photos found in the class folders. Kept apart
// from dataset.cpp, which reads the folders, so that it can be tested and fuzzed alone.

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace bachlab::host {

/// Parses `text`, the content of the ground-truth file `csv` in the folder `photos`, whose
/// class folders photos/classes[c] hold the files per_class[c]. Appends to `problems` one
/// line per bad row ("<csv>:<line>: ..."), per row naming a file that is missing or in
/// another class's folder, per file listed twice, and per file on disk that no row names.
/// A UTF-8 byte-order mark, blank lines, spaces around fields, CRLF line ends and a header
/// row (a first line naming no image file) are accepted. A row may carry a third field, the
/// photo's group (patient or slide id, for [data.split] group = "csv"): `groups`, if given,
/// receives file name -> group for the rows that have one.
void check_ground_truth_text(const std::string& text, const std::filesystem::path& csv,
                             const std::filesystem::path& photos, const std::vector<std::string>& classes,
                             const std::vector<std::vector<std::filesystem::path>>& per_class,
                             std::vector<std::string>& problems,
                             std::map<std::string, std::string>* groups = nullptr);

}  // namespace bachlab::host
