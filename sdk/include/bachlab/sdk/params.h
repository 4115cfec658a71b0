#pragma once
/// \file params.h
/// Typed plugin settings read from a TOML table. A plugin reads each setting once, with
/// a default and its valid range; Params remembers which keys were asked for so that the
/// host can reject unknown (misspelt) keys with a "did you mean". Problems are collected,
/// not thrown one at a time, so a user sees every mistake of a table in one pass.
/// Each getter also records the key's KeySpec (type, default, range or choices), from which
/// `bachlab config-keys` prints the config reference, so docs/configs.md cannot drift
/// from what the code reads.

#include <bachlab/sdk/error.h>
#include <bachlab/sdk/value.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace bachlab::sdk {

/// Where a value was written: file and 1-based line (0 when it came from code).
struct Origin {
  /// Path of the config file, as the user named it.
  std::string file;
  /// 1-based line in that file; 0 if unknown.
  int line = 0;

  /// "file:line: " or "file: " or "" - the prefix of every error message.
  std::string prefix() const {
    if (file.empty()) return "";
    return line > 0 ? file + ":" + std::to_string(line) + ": " : file + ": ";
  }
};

/// Levenshtein distance, for "did you mean" suggestions.
inline size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

/// The closest candidate to `word` if it is near enough to be a typo, else "".
inline std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& candidate : candidates) {
    size_t d = edit_distance(word, candidate);
    if (d < best_distance) {
      best_distance = d;
      best = candidate;
    }
  }
  return best;
}

/// An inclusive numeric range; either end may be open.
template <typename T>
struct Range {
  std::optional<T> min;
  std::optional<T> max;
};

/// What a reader asked of one key: recorded by every getter so that the config reference
/// (`bachlab config-keys`, docs/configs.md) comes from the code that reads the key.
struct KeySpec {
  /// "integer", "number", "bool", "string", "path", "list of integers", "list of numbers",
  /// "list of strings", "any" (get_value: the reader checks the type itself), or what a
  /// describe() call says.
  std::string type;
  /// The default as TOML writes it (32, 0.001, "same", [32, 64]); "" when there is none.
  std::string fallback;
  /// The valid range ("1..64", ">= 0", "<= 1.0") or the choices ("same", "valid"); "" when
  /// any value of the type is accepted.
  std::string rule;
  /// Who read the key: "" for the host, "<kind> <name>" (e.g. "model model4a") for a plugin.
  std::string reader;

  bool operator==(const KeySpec& other) const {
    return type == other.type && fallback == other.fallback && rule == other.rule && reader == other.reader;
  }
  bool operator!=(const KeySpec& other) const { return !(*this == other); }
};

/// Settings for one plugin instance, with where each came from.
class Params {
 public:
  /// `table` names the TOML table in messages, e.g. "[model]"; `origin` is the table's
  /// own location, used for errors about the table as a whole.
  explicit Params(std::string table = "", Origin origin = {})
      : table_(std::move(table)), origin_(std::move(origin)) {}

  /// Sets a value (the host does this while reading the config).
  void set(const std::string& key, Value value, Origin origin = {}) {
    entries_[key] = Entry{std::move(value), std::move(origin)};
  }

  /// True if the config gave this key.
  bool has(const std::string& key) const { return entries_.count(key) != 0; }

  /// Every key the config gave, sorted.
  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    for (const auto& [key, entry] : entries_) out.push_back(key);
    return out;
  }

  /// The raw value of a key the config gave; throws if absent.
  const Value& raw(const std::string& key) const { return entries_.at(key).value; }

  /// Where `key` was written; the table's own origin when the config did not give it, so
  /// a caller can point at the table a missing key belongs in.
  Origin origin(const std::string& key) const {
    const Entry* entry = find(key);
    return entry ? entry->origin : origin_;
  }

  /// Marks `key` as read and returns its value whatever its type, nullopt if absent: for
  /// settings no typed getter covers (a list of mixed scalars, a value whose type selects
  /// how it is read), which the caller then validates itself.
  std::optional<Value> get_value(const std::string& key) {
    ask(key, "any", "", "");
    const Entry* entry = find(key);
    if (!entry) return std::nullopt;
    return entry->value;
  }

  /// An integer, `fallback` when absent; out of range or wrong type is recorded as an error.
  int64_t get_int(const std::string& key, int64_t fallback, Range<int64_t> range = {}) {
    ask(key, "integer", to_string(Scalar(fallback)), range_text(range));
    const Entry* entry = find(key);
    if (!entry) return fallback;
    const auto* value = std::get_if<int64_t>(&entry->value);
    if (!value) return wrong_type(key, *entry, "an integer"), fallback;
    if (!in_range(*value, range)) return out_of_range(key, *entry, range), fallback;
    return *value;
  }

  /// A float (an integer is accepted and converted), `fallback` when absent.
  double get_float(const std::string& key, double fallback, Range<double> range = {}) {
    ask(key, "number", to_string(Scalar(fallback)), range_text(range));
    const Entry* entry = find(key);
    if (!entry) return fallback;
    double value = 0;
    if (const auto* d = std::get_if<double>(&entry->value)) {
      value = *d;
    } else if (const auto* i = std::get_if<int64_t>(&entry->value)) {
      value = static_cast<double>(*i);
    } else {
      return wrong_type(key, *entry, "a number"), fallback;
    }
    if (!in_range(value, range)) return out_of_range(key, *entry, range), fallback;
    return value;
  }

  /// A bool, `fallback` when absent.
  bool get_bool(const std::string& key, bool fallback) {
    ask(key, "bool", to_string(Scalar(fallback)), "");
    const Entry* entry = find(key);
    if (!entry) return fallback;
    const auto* value = std::get_if<bool>(&entry->value);
    if (!value) return wrong_type(key, *entry, "true or false"), fallback;
    return *value;
  }

  /// A string, `fallback` when absent; if `choices` is not empty the value must be one.
  std::string get_string(const std::string& key, const std::string& fallback,
                         const std::vector<std::string>& choices = {}) {
    ask(key, "string", to_string(Scalar(fallback)), choices_text(choices));
    const Entry* entry = find(key);
    if (!entry) return fallback;
    const auto* value = std::get_if<std::string>(&entry->value);
    if (!value) return wrong_type(key, *entry, "a string"), fallback;
    if (!choices.empty() && std::find(choices.begin(), choices.end(), *value) == choices.end()) {
      std::string hint = closest_match(*value, choices);
      add_error(entry->origin, key + " must be one of " + choices_text(choices) + " (was \"" + *value + "\")" +
                                   (hint.empty() ? "" : "; did you mean \"" + hint + "\"?"));
      return fallback;
    }
    return *value;
  }

  /// A list of integers, each within `range`.
  std::vector<int64_t> get_int_list(const std::string& key, std::vector<int64_t> fallback,
                                    Range<int64_t> range = {}) {
    ask(key, "list of integers", list_text(fallback), range_text(range));
    const Entry* entry = find(key);
    if (!entry) return fallback;
    const auto* list = std::get_if<std::vector<Scalar>>(&entry->value);
    if (!list) return wrong_type(key, *entry, "a list of integers"), fallback;
    std::vector<int64_t> out;
    for (const auto& item : *list) {
      const auto* i = std::get_if<int64_t>(&item);
      if (!i) return wrong_type(key, *entry, "a list of integers"), fallback;
      if (!in_range(*i, range)) return out_of_range(key, *entry, range), fallback;
      out.push_back(*i);
    }
    return out;
  }

  /// A list of numbers, each within `range`.
  std::vector<double> get_float_list(const std::string& key, std::vector<double> fallback,
                                     Range<double> range = {}) {
    ask(key, "list of numbers", list_text(fallback), range_text(range));
    const Entry* entry = find(key);
    if (!entry) return fallback;
    const auto* list = std::get_if<std::vector<Scalar>>(&entry->value);
    if (!list) return wrong_type(key, *entry, "a list of numbers"), fallback;
    std::vector<double> out;
    for (const auto& item : *list) {
      double value = 0;
      if (const auto* d = std::get_if<double>(&item)) {
        value = *d;
      } else if (const auto* i = std::get_if<int64_t>(&item)) {
        value = static_cast<double>(*i);
      } else {
        return wrong_type(key, *entry, "a list of numbers"), fallback;
      }
      if (!in_range(value, range)) return out_of_range(key, *entry, range), fallback;
      out.push_back(value);
    }
    return out;
  }

  /// A list of strings, `fallback` when absent.
  std::vector<std::string> get_string_list(const std::string& key, std::vector<std::string> fallback) {
    ask(key, "list of strings", list_text(fallback), "");
    const Entry* entry = find(key);
    if (!entry) return fallback;
    const auto* list = std::get_if<std::vector<Scalar>>(&entry->value);
    if (!list) return wrong_type(key, *entry, "a list of strings"), fallback;
    std::vector<std::string> out;
    for (const auto& item : *list) {
      const auto* text = std::get_if<std::string>(&item);
      if (!text) return wrong_type(key, *entry, "a list of strings"), fallback;
      out.push_back(*text);
    }
    return out;
  }

  /// A file path; a relative path is taken relative to the config file that wrote it,
  /// so a config works from any working directory.
  std::string get_path(const std::string& key, const std::string& fallback) {
    std::string value = get_string(key, fallback);
    ask(key, "path", to_string(Scalar(fallback)), "");
    const Entry* entry = find(key);
    if (!entry || value.empty() || value.front() == '/' || entry->origin.file.empty()) return value;
    auto slash = entry->origin.file.find_last_of('/');
    return slash == std::string::npos ? value : entry->origin.file.substr(0, slash + 1) + value;
  }

  /// Overrides what the getter recorded for `key` (and marks it read), for what no single
  /// getter states: a key read as one value or a list (read_per_layer), a get_value key the
  /// reader checks itself, or a default computed from other settings, in words ("the
  /// [experiment] seed"). Empty arguments keep what the getter recorded, so
  /// `describe("seed", "", "the [experiment] seed")` changes only the default.
  void describe(const std::string& key, const std::string& type, const std::string& fallback,
                const std::string& rule = "") {
    const auto it = specs_.find(key);
    const KeySpec old = it == specs_.end() ? KeySpec() : it->second;
    ask(key, type.empty() ? old.type : type, fallback.empty() ? old.fallback : fallback,
        rule.empty() ? old.rule : rule);
  }

  /// The spec of every key asked for so far, by key; each spec holds what the last getter
  /// (or describe) of that key said.
  const std::map<std::string, KeySpec>& specs() const { return specs_; }

  /// Who reads the table from now on, recorded in each KeySpec: the host sets "<kind>
  /// <name>" while a plugin's factory reads the table and "" afterwards, so the config
  /// reference lists a plugin's keys under the plugin and `plugin = ...` under the host.
  void set_reader(std::string reader) { reader_ = std::move(reader); }

  /// Records a plugin-specific rule violation for `key` (e.g. two settings that clash).
  void fail(const std::string& key, const std::string& message) {
    asked_.insert(key);
    const Entry* entry = find(key);
    add_error(entry ? entry->origin : origin_, key + " " + message);
  }

  /// Keys the config gave that the plugin never asked for.
  std::vector<std::string> unknown_keys() const {
    std::vector<std::string> out;
    for (const auto& [key, entry] : entries_)
      if (!asked_.count(key)) out.push_back(key);
    return out;
  }

  /// Every problem so far, including unknown keys (with a suggestion when one is close).
  std::vector<std::string> problems() const {
    std::vector<std::string> out = errors_;
    std::vector<std::string> known(asked_.begin(), asked_.end());
    for (const auto& key : unknown_keys()) {
      std::string hint = closest_match(key, known);
      std::string message = entries_.at(key).origin.prefix() + label() + "unknown key \"" + key + "\"";
      if (!hint.empty()) {
        message += "; did you mean \"" + hint + "\"?";
      } else if (!known.empty()) {
        std::string list;
        for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
        message += "; known keys: " + list;
      } else {
        message += "; this plugin takes no settings";
      }
      out.push_back(message);
    }
    return out;
  }

  /// Throws one Error listing every problem, if there is any.
  void check() const {
    auto all = problems();
    if (all.empty()) return;
    std::string message;
    for (const auto& line : all) message += (message.empty() ? "" : "\n") + line;
    throw Error(message);
  }

 private:
  struct Entry {
    Value value;
    Origin origin;
  };

  // Marks `key` as read and keeps what was asked of it; the last ask of a key wins.
  void ask(const std::string& key, std::string type, std::string fallback, std::string rule) {
    asked_.insert(key);
    specs_[key] = KeySpec{std::move(type), std::move(fallback), std::move(rule), reader_};
  }

  template <typename T>
  static std::string range_text(const Range<T>& range) {
    if (range.min && range.max) return to_string(Scalar(*range.min)) + ".." + to_string(Scalar(*range.max));
    if (range.min) return ">= " + to_string(Scalar(*range.min));
    if (range.max) return "<= " + to_string(Scalar(*range.max));
    return "";
  }

  static std::string choices_text(const std::vector<std::string>& choices) {
    std::string list;
    for (const auto& c : choices) list += (list.empty() ? "" : ", ") + to_string(Scalar(c));
    return list;
  }

  template <typename T>
  static std::string list_text(const std::vector<T>& items) {
    std::vector<Scalar> list(items.begin(), items.end());
    return to_string(Value(std::move(list)));
  }

  const Entry* find(const std::string& key) const {
    auto it = entries_.find(key);
    return it == entries_.end() ? nullptr : &it->second;
  }

  std::string label() const { return table_.empty() ? "" : table_ + " "; }

  void add_error(const Origin& origin, const std::string& message) {
    errors_.push_back(origin.prefix() + label() + message);
  }

  void wrong_type(const std::string& key, const Entry& entry, const std::string& expected) {
    add_error(entry.origin, key + " must be " + expected + " (was " + type_name(entry.value) + " " +
                                to_string(entry.value) + ")");
  }

  template <typename T>
  static bool in_range(T value, const Range<T>& range) {
    return (!range.min || value >= *range.min) && (!range.max || value <= *range.max);
  }

  template <typename T>
  void out_of_range(const std::string& key, const Entry& entry, const Range<T>& range) {
    const std::string rule = (range.min && range.max ? "in " : "") + range_text(range);
    add_error(entry.origin, key + " must be " + rule + " (was " + to_string(entry.value) + ")");
  }

  std::string table_;
  Origin origin_;
  std::map<std::string, Entry> entries_;
  std::set<std::string> asked_;
  std::map<std::string, KeySpec> specs_;
  std::string reader_;
  std::vector<std::string> errors_;
};

}  // namespace bachlab::sdk
