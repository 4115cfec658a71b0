#pragma once
// The config reference: every key the readers of a config asked for, table by table, with
// the type, default and range or choices each reader gave (sdk::KeySpec), so that
// docs/configs.md comes from the code. Some keys are read only under some settings (a
// tuning dimension's `step` only for type = "int"), so a schema is the union over several
// configs whose readers have run. `bachlab config-keys` prints it and keeps the doc.
//
// In the doc, the generated tables sit between two marker lines; each row is
//   | `key` | type | default | range | meaning |
// where only the meaning is written by hand and kept when the tables are regenerated.

#include "host/config/config.h"

#include <bachlab/sdk/param_table.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace bachlab::host {

/// One table of the reference: a host table ("[train]") or one plugin's own keys.
struct SchemaSection {
  /// "`[train]`" for a host table, the plugin's name ("model4a") for a plugin.
  std::string title;
  /// "" for a host table; "model", "augmentation", "optimizer" or "tuner" for a plugin.
  std::string kind;
  /// The table a plugin's keys are written in ("[model]"); "" for a host table.
  std::string table;
  /// Key -> what its reader asked.
  std::map<std::string, sdk::KeySpec> keys;
  /// Key -> its value in each config added, in the order added, as TOML writes it:
  /// "(default)" when that config's readers asked for the key but the config does not set
  /// it, "" (or no entry) when they did not ask for it.
  std::map<std::string, std::vector<std::string>> values;
};

class ConfigSchema {
 public:
  /// Adds every key asked of the tables of `config`, whose readers have run. `doc_table`
  /// maps a table's name ("[tune.space.model.filters]") to the one the reference lists it
  /// under ("[tune.space.<table>.<key>]"). Throws Error naming both configs when a key is already known with
  /// another spec (a default computed from other settings needs Params::describe).
  void add(const Config& config, const std::function<std::string(const std::string&)>& doc_table);

  /// Gives plugin `name` of `kind` a section even if it asks for no key, as one that
  /// takes no settings; `table` is where its settings would be written ("[tune.options]").
  void add_plugin(const std::string& kind, const std::string& name, const std::string& table);

  /// True if plugin `name` of `kind` has a section.
  bool has_plugin(const std::string& kind, const std::string& name) const;

  /// Host tables by name, then plugins by kind (model, augmentation, optimizer, tuner)
  /// and name.
  std::vector<SchemaSection> sections() const;

  /// One block per section: key, type, default, range and the key's value in each config
  /// added (a column headed by the config's file name), aligned.
  std::string text() const;

  /// The doc's generated part, from the first marker line to the last, each row with the
  /// meaning `doc` (the doc as it is, or "") gives its section and key. With `values`, a
  /// column per config added holds the key's value there (as text() does; for reading,
  /// never for the doc, whose tables are the same whatever configs built them).
  std::string markdown(const std::string& doc = "", bool values = false) const;

  /// `doc` with its generated part replaced by markdown(doc). Throws Error if `doc_name`
  /// lacks the marker lines.
  std::string update(const std::string& doc, const std::string& doc_name) const;

  /// Every way `doc` differs from this schema, one line each with `doc_name` and line:
  /// keys read but not documented, keys documented but read by no reader, rows whose
  /// type, default or range differ from the code's, rows without a meaning, and a generated
  /// part whose layout differs from markdown(doc). Empty when the doc is up to date.
  std::vector<std::string> drift(const std::string& doc, const std::string& doc_name) const;

 private:
  SchemaSection& section(const std::string& kind, const std::string& name, const std::string& table);

  // By sort key ("0 [data]", "1 0 model4a", ...), so that iteration is reference order.
  std::map<std::string, SchemaSection> sections_;
  // "<title> <key>" -> the config that first read the key, for conflict messages.
  std::map<std::string, std::string> sources_;
  // The configs added, in order: the value columns.
  std::vector<std::string> configs_;
};

}  // namespace bachlab::host
