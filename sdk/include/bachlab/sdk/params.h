#pragma once
/// \file params.h
/// Typed plugin settings read from a TOML table. A plugin reads each setting once, with
/// a default and its valid range; the host remembers which keys were asked for so that it
/// can reject unknown (misspelt) keys with a "did you mean". Problems are collected, not
/// thrown one at a time, so a user sees every mistake of a table in one pass. Each getter
/// also records the key's KeySpec (type, default, range or choices), from which `bachlab
/// config-keys` prints the config reference, so docs/configs.md cannot drift from what the
/// code reads.
///
/// Params is an interface: plugins see settings only through these virtual functions,
/// and the layout of the object behind them belongs to libbachlab_sdk.so (ParamTable,
/// param_table.h), which the host ships. Adding to what the host keeps per key changes no
/// plugin; a new getter is appended at the end (a minor ABI version), never inserted.

#include <bachlab/sdk/error.h>
#include <bachlab/sdk/value.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace bachlab::sdk {

/// Where a value was written: file and 1-based line (0 when it came from code).
struct Origin {
  /// Path of the config file, as the user named it.
  std::string file;
  /// 1-based line in that file; 0 if unknown.
  int line = 0;

  /// "file:line: " or "file: " or "" - the prefix of every error message.
  std::string prefix() const;
};

/// One problem with a table's settings, as a ParamTable records it: which table and key
/// it is about, where that was written, and what is wrong. A caller that must act on a
/// problem (the study check finds the [tune.space] dimension it is about) reads the
/// fields; a user reads text().
struct ParamProblem {
  /// The table as messages name it, e.g. "[model]" or "[data.split]"; "" for none.
  std::string table;
  /// The key the problem is about; "" when it is about no single key.
  std::string key;
  /// Where the value was written; the table's own origin for a key the config did not give.
  Origin origin;
  /// What is wrong, starting with the key: "dropout must be in 0..0.99 (was 2)".
  std::string message;
  /// True when `key` is one the config gave but no reader asked for (a misspelt or
  /// unsupported setting).
  bool unknown_key = false;

  /// "[table] message" ("message" when there is no table): the problem without its origin.
  std::string description() const;
  /// The problem as printed: "file:line: [table] message".
  std::string text() const;
};

/// The Error that Params::check() throws: its message lists every problem's text(), one a
/// line, and problems() gives them as recorded. Header-only with default visibility, as
/// Error, so the host catches it by type when it crosses from a plugin.
class __attribute__((visibility("default"))) ParamsError : public Error {
 public:
  ParamsError(const std::string& message, std::vector<ParamProblem> problems)
      : Error(message), problems_(std::move(problems)) {}
  /// Every problem the message lists, in its order.
  const std::vector<ParamProblem>& problems() const { return problems_; }

 private:
  std::vector<ParamProblem> problems_;
};

/// Levenshtein distance, for "did you mean" suggestions.
size_t edit_distance(const std::string& a, const std::string& b);

/// The closest candidate to `word` if it is near enough to be a typo, else "".
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

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

  bool operator==(const KeySpec& other) const;
  bool operator!=(const KeySpec& other) const { return !(*this == other); }
};

/// Settings for one plugin instance, with where each came from. Every getter marks its key
/// as read; a value of the wrong type or out of range is recorded as a problem (the host
/// reports them all at once) and the getter returns `fallback`.
class Params {
 public:
  virtual ~Params() = default;

  /// True if the config gave this key.
  virtual bool has(const std::string& key) const = 0;
  /// Every key the config gave, sorted.
  virtual std::vector<std::string> keys() const = 0;
  /// Where `key` was written; the table's own origin when the config did not give it, so
  /// a caller can point at the table a missing key belongs in.
  virtual Origin origin(const std::string& key) const = 0;

  /// Marks `key` as read and returns its value whatever its type, nullopt if absent: for
  /// settings no typed getter covers (a list of mixed scalars, a value whose type selects
  /// how it is read), which the caller then validates itself.
  virtual std::optional<Value> get_value(const std::string& key) = 0;
  /// An integer, `fallback` when absent.
  virtual int64_t get_int(const std::string& key, int64_t fallback, Range<int64_t> range = {}) = 0;
  /// A float (an integer is accepted and converted), `fallback` when absent.
  virtual double get_float(const std::string& key, double fallback, Range<double> range = {}) = 0;
  /// A bool, `fallback` when absent.
  virtual bool get_bool(const std::string& key, bool fallback) = 0;
  /// A string, `fallback` when absent; if `choices` is not empty the value must be one.
  virtual std::string get_string(const std::string& key, const std::string& fallback,
                                 const std::vector<std::string>& choices = {}) = 0;
  /// A list of integers, each within `range`.
  virtual std::vector<int64_t> get_int_list(const std::string& key, std::vector<int64_t> fallback,
                                            Range<int64_t> range = {}) = 0;
  /// A list of numbers, each within `range`.
  virtual std::vector<double> get_float_list(const std::string& key, std::vector<double> fallback,
                                             Range<double> range = {}) = 0;
  /// A list of strings, `fallback` when absent.
  virtual std::vector<std::string> get_string_list(const std::string& key, std::vector<std::string> fallback) = 0;
  /// A file path; a relative path is taken relative to the config file that wrote it,
  /// so a config works from any working directory.
  virtual std::string get_path(const std::string& key, const std::string& fallback) = 0;

  /// Overrides what the getter recorded for `key` (and marks it read), for what no single
  /// getter states: a key read as one value or a list (read_per_layer), a get_value key the
  /// reader checks itself, or a default computed from other settings, in words ("the
  /// [experiment] seed"). Empty arguments keep what the getter recorded, so
  /// `describe("seed", "", "the [experiment] seed")` changes only the default.
  virtual void describe(const std::string& key, const std::string& type, const std::string& fallback,
                        const std::string& rule = "") = 0;
  /// Records a plugin-specific rule violation for `key` (e.g. two settings that clash).
  virtual void fail(const std::string& key, const std::string& message) = 0;
  /// Throws one ParamsError listing every problem recorded so far (and every key no reader
  /// asked for), if there is any: a plugin calls it before work that the problems would spoil.
  virtual void check() const = 0;

 protected:
  Params() = default;
  Params(const Params&) = default;
  Params& operator=(const Params&) = default;
};

}  // namespace bachlab::sdk
