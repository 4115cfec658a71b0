#pragma once
// A config key whose value is one of a few words, read into an enum: the words are written
// once, in the Choice naming the enum's values, and everything past the reader compares
// enum values, never strings.
//
//   enum class Source { folder, synthetic };
//   inline const Choice<Source> kSources{{"folder", Source::folder}, {"synthetic", Source::synthetic}};
//   out.source = kSources.read(data, "source", Source::folder);  // [data] source = "folder"
//   kSources.name(out.source)                                    // "folder", for messages and files

#include <bachlab/sdk/error.h>
#include <bachlab/sdk/params.h>

#include <initializer_list>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace bachlab::host {

template <typename E>
class Choice {
 public:
  Choice(std::initializer_list<std::pair<const char*, E>> words) {
    for (const auto& [word, value] : words) words_.emplace_back(word, value);
  }

  /// The word of `value`.
  const std::string& name(E value) const {
    for (const auto& [word, v] : words_)
      if (v == value) return word;
    throw std::logic_error("a Choice without a word for one of its values");
  }

  /// Every word, in the order given (the order messages and the config reference list them).
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& entry : words_) out.push_back(entry.first);
    return out;
  }

  /// The value of `word`; throws Error listing the words if it is none of them.
  E value(const std::string& word) const {
    for (const auto& [w, v] : words_)
      if (w == word) return v;
    std::string list;
    for (const auto& [w, v] : words_) list += (list.empty() ? "\"" : ", \"") + w + "\"";
    throw Error("expected one of " + list + ", found \"" + word + "\"");
  }

  /// Reads `key` of `table` as one of the words (a problem is recorded there otherwise, and
  /// `fallback` returned).
  E read(sdk::Params& table, const std::string& key, E fallback) const {
    return value(table.get_string(key, name(fallback), names()));
  }

 private:
  std::vector<std::pair<std::string, E>> words_;
};

}  // namespace bachlab::host
