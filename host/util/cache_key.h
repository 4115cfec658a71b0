#pragma once
// Cache keys are text (one setting or input per line), stored inside the cache file and
// compared whole; sdk::hash_text of the text names the file. Shared by the preprocessing
// cache, the feature cache and the study store.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace bachlab::host {

/// The first line at which `stored` and `current` differ, as (stored line, current line);
/// a side that ran out of lines gives "". Nullopt if they are equal line by line. For
/// messages such as "cache is stale: ...".
std::optional<std::pair<std::string, std::string>> first_differing_lines(const std::string& stored,
                                                                         const std::string& current);

}  // namespace bachlab::host
