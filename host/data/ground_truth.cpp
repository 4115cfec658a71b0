#include "host/data/ground_truth.h"

#include "host/data/image_decode.h"

#include <bachlab/sdk/param_table.h>

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <sstream>
#include <utility>

namespace bachlab::host {

namespace fs = std::filesystem;

namespace {

std::string trim(const std::string& text) {
  const char* space = " \t\r\n";
  size_t first = text.find_first_not_of(space);
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(space) - first + 1);
}

std::string join_classes(const std::vector<std::string>& classes) {
  std::string out;
  for (const auto& c : classes) out += (out.empty() ? "" : ", ") + c;
  return out;
}

}  // namespace

void check_ground_truth_text(const std::string& content, const fs::path& csv, const fs::path& photos,
                             const std::vector<std::string>& classes,
                             const std::vector<std::vector<fs::path>>& per_class, std::vector<std::string>& problems,
                             std::map<std::string, std::string>* groups) {
  std::istringstream in(content);
  // Which class folder(s) each file name was found in.
  std::map<std::string, std::vector<size_t>> on_disk;
  for (size_t c = 0; c < per_class.size(); ++c)
    for (const auto& file : per_class[c]) on_disk[file.filename().string()].push_back(c);

  std::map<std::pair<std::string, size_t>, int> listed;  // (file, class) -> CSV line
  std::map<std::string, int> first_line;
  std::string text;
  for (int line = 1; std::getline(in, text); ++line) {
    if (line == 1 && text.rfind("\xEF\xBB\xBF", 0) == 0) text.erase(0, 3);  // spreadsheet BOM
    text = trim(text);
    if (text.empty()) continue;
    std::vector<std::string> fields;
    std::istringstream cells(text);
    for (std::string cell; std::getline(cells, cell, ',');) fields.push_back(trim(cell));
    if (!text.empty() && text.back() == ',') fields.emplace_back();
    const bool has_group = fields.size() == 3;
    if (fields.size() < 2 || fields.size() > 3 || fields[0].empty() || fields[1].empty() ||
        (has_group && fields[2].empty())) {
      problems.push_back(
          fmt::format("{}:{}: expected <file>,<Class> or <file>,<Class>,<group> (was \"{}\")", csv.string(), line, text));
      continue;
    }
    const std::string& file = fields[0];
    const std::string& label = fields[1];
    auto known = std::find(classes.begin(), classes.end(), label);
    if (known == classes.end()) {
      // A header row is allowed: the first line, naming no image file.
      if (line == 1 && !has_image_extension(file)) continue;
      std::string hint = sdk::closest_match(label, classes);
      problems.push_back(fmt::format("{}:{}: unknown label \"{}\" for {}; expected one of {}{}", csv.string(), line,
                                     label, file, join_classes(classes),
                                     hint.empty() ? "" : fmt::format(" (did you mean \"{}\"?)", hint)));
      continue;
    }
    const size_t c = size_t(known - classes.begin());
    if (auto seen = first_line.find(file); seen != first_line.end()) {
      problems.push_back(fmt::format("{}:{}: {} is listed again (first at line {}); delete one of the rows",
                                     csv.string(), line, file, seen->second));
      continue;
    }
    first_line[file] = line;
    if (has_group && groups) (*groups)[file] = fields[2];
    auto found = on_disk.find(file);
    const bool in_own_folder =
        found != on_disk.end() && std::find(found->second.begin(), found->second.end(), c) != found->second.end();
    if (in_own_folder) {
      listed[{file, c}] = line;
    } else if (found != on_disk.end()) {
      problems.push_back(fmt::format("{}:{}: labels {} as {} but the file is in {}/; fix the row or move the file",
                                     csv.string(), line, file, label, (photos / classes[found->second.front()]).string()));
      listed[{file, found->second.front()}] = line;
    } else {
      problems.push_back(fmt::format("{}:{}: names {}, which is not in {}/; restore the file or delete the row",
                                     csv.string(), line, file, (photos / label).string()));
    }
  }
  for (size_t c = 0; c < per_class.size(); ++c) {
    for (const auto& file : per_class[c]) {
      const std::string name = file.filename().string();
      if (!listed.count({name, c}))
        problems.push_back(fmt::format("{}: not listed in {}; add the row \"{},{}\" or remove the file",
                                       file.string(), csv.string(), name, classes[c]));
    }
  }
}


}  // namespace bachlab::host
