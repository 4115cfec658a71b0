#pragma once
// Reading back the CSV files a run writes (predictions.csv, split.csv) in tests.

#include <sstream>
#include <string>
#include <vector>

namespace bachlab::host {

// The rows of a CSV file without its header, each split at commas (no field here is quoted).
inline std::vector<std::vector<std::string>> csv_rows(const std::string& text, std::string* header = nullptr) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream lines(text);
  std::string line;
  std::getline(lines, line);
  if (header) *header = line;
  while (std::getline(lines, line)) {
    std::vector<std::string> cells;
    std::istringstream cellstream(line);
    for (std::string cell; std::getline(cellstream, cell, ',');) cells.push_back(cell);
    if (!line.empty() && line.back() == ',') cells.push_back("");
    rows.push_back(cells);
  }
  return rows;
}

}  // namespace bachlab::host
