#pragma once
// Reading back the CSV files a run writes (predictions.csv, split.csv) in tests.

#include "host/util/html.h"

#include <string>
#include <vector>

namespace bachlab::host {

// The rows of a CSV file without its header (csv_rows); `header`, if given, receives the
// header line as written.
inline std::vector<std::vector<std::string>> csv_data_rows(const std::string& text, std::string* header = nullptr) {
  auto rows = csv_rows(text);
  if (header) *header = text.substr(0, text.find('\n'));
  if (!rows.empty()) rows.erase(rows.begin());
  return rows;
}

}  // namespace bachlab::host
