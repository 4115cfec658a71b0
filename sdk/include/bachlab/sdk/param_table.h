#pragma once
/// \file param_table.h
/// ParamTable: the Params the host fills from a config table and hands to readers (its
/// own areas and every plugin). It lives in libbachlab_sdk.so and keeps its state behind
/// a pointer, so its layout is the library's alone: plugins only ever see Params&. A
/// plugin's own tests make one to call the plugin with settings.
///
/// \code
///   bachlab::sdk::ParamTable params("[model]");
///   params.set("dropout", 0.2);
///   auto net = plugin.create(spec, params);
///   params.check();  // throws one ParamsError listing every problem
/// \endcode

#include <bachlab/sdk/params.h>

#include <map>
#include <memory>

namespace bachlab::sdk {

class ParamTable final : public Params {
 public:
  /// `table` names the TOML table in messages, e.g. "[model]"; `origin` is the table's
  /// own location, used for errors about the table as a whole.
  explicit ParamTable(std::string table = "", Origin origin = {});
  ParamTable(const ParamTable& other);
  ParamTable& operator=(const ParamTable& other);
  ParamTable(ParamTable&& other) noexcept;
  ParamTable& operator=(ParamTable&& other) noexcept;
  ~ParamTable() override;

  /// Sets a value (the host does this while reading the config).
  void set(const std::string& key, Value value, Origin origin = {});
  /// The raw value of a key the config gave; throws std::out_of_range if absent.
  const Value& raw(const std::string& key) const;

  bool has(const std::string& key) const override;
  std::vector<std::string> keys() const override;
  Origin origin(const std::string& key) const override;
  std::optional<Value> get_value(const std::string& key) override;
  int64_t get_int(const std::string& key, int64_t fallback, Range<int64_t> range = {}) override;
  double get_float(const std::string& key, double fallback, Range<double> range = {}) override;
  bool get_bool(const std::string& key, bool fallback) override;
  std::string get_string(const std::string& key, const std::string& fallback,
                         const std::vector<std::string>& choices = {}) override;
  std::vector<int64_t> get_int_list(const std::string& key, std::vector<int64_t> fallback,
                                    Range<int64_t> range = {}) override;
  std::vector<double> get_float_list(const std::string& key, std::vector<double> fallback,
                                     Range<double> range = {}) override;
  std::vector<std::string> get_string_list(const std::string& key, std::vector<std::string> fallback) override;
  std::string get_path(const std::string& key, const std::string& fallback) override;
  void describe(const std::string& key, const std::string& type, const std::string& fallback,
                const std::string& rule = "") override;
  void fail(const std::string& key, const std::string& message) override;

  /// The spec of every key asked for so far, by key; each spec holds what the last getter
  /// (or describe) of that key said.
  const std::map<std::string, KeySpec>& specs() const;
  /// Who reads the table from now on, recorded in each KeySpec: the host sets "<kind>
  /// <name>" while a plugin's factory reads the table and "" afterwards, so the config
  /// reference lists a plugin's keys under the plugin and `plugin = ...` under the host.
  void set_reader(std::string reader);
  /// Keys the config gave that no reader asked for.
  std::vector<std::string> unknown_keys() const;
  /// Every problem so far, including unknown keys (with a suggestion when one is close),
  /// as recorded.
  std::vector<ParamProblem> structured_problems() const;
  /// The text() of each of structured_problems(), as printed.
  std::vector<std::string> problems() const;
  void check() const override;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace bachlab::sdk
