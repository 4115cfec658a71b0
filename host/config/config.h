#pragma once
// An experiment config: a TOML file, possibly extending another (`extends = "base.toml"`),
// merged into one tree and handed out table by table as sdk::ParamTable. Every area of the
// host reads its own table through Params, exactly as plugins read theirs, so there is one
// way to read and validate settings: typed getters with defaults and ranges, unknown keys
// reported with a "did you mean", every problem of every table collected in one pass.

#include <bachlab/sdk/param_table.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace bachlab::host {

class Config {
 public:
  /// Reads `path` and every file it extends (relative to the extending file). Syntax
  /// errors, missing files and `extends` cycles throw Error naming file and line.
  static Config load(const std::filesystem::path& path);

  /// load(), then apply_overrides(overrides).
  static Config load(const std::filesystem::path& path, const std::vector<std::string>& overrides);

  /// Parses TOML text as if read from `name` (for tests and for configs made in code).
  static Config parse(const std::string& text, const std::string& name);

  Config();
  ~Config();
  Config(Config&&) noexcept;
  Config& operator=(Config&&) noexcept;

  /// Sets `dotted.key=value` assignments from the command line (Hydra style:
  /// `train.epochs=5 optimizer.lr=3e-4 model.plugin=model4b`) on top of the files, as if
  /// written last. A value is read as TOML (integer, float, bool, list, quoted string);
  /// anything else is taken as a bare string. Each value's origin is `source`, so the
  /// readers validate it like a file key (type, range, "did you mean") and say where it came
  /// from; a relative path in one is taken from the working directory. Throws Error for an
  /// assignment that is not KEY=VALUE or that addresses a value as a table.
  /// `~KEY` (Hydra's deletion) removes a key, a table or an array of tables, wherever it
  /// was set (a file it extends included); removing what is not there is an Error.
  /// An element of an array of tables is addressed by its 0-based index: `augment.0.p=0.3`
  /// sets a key of the first [[augment]], `~augment.1` removes the second, and
  /// `+augment={plugin = "flip", p = 0.5}` (Hydra's `+`: add) appends a table, creating the
  /// array if there is none; an index out of range is an Error naming how many there are.
  /// `source` names where the overrides come from in messages and origins.
  void apply_overrides(const std::vector<std::string>& overrides, const std::string& source = "command line");

  /// True if `argument` is written as a command-line override (KEY=VALUE, +KEY=VALUE or
  /// ~KEY with a dotted or plain key), rather than a file name.
  static bool is_override(const std::string& argument);

  /// The file given to load(), as given.
  const std::filesystem::path& path() const { return path_; }

  /// The settings of table `name` ("data", "train", or dotted for nested tables such as
  /// "tune.space.filters"): its scalars and arrays of scalars. An absent table gives empty
  /// Params. The same object is returned on every call, so the keys asked of it add up.
  sdk::ParamTable& table(const std::string& name);

  /// Each element of an array of tables (`[[augment]]`), in order, labelled
  /// "[[augment]] #1" and so on. Absent: empty.
  std::vector<sdk::ParamTable>& array(const std::string& name);

  /// Names of the child tables of `name` (e.g. the parameters under "tune.space"), in the
  /// order they appear in the file. Marks `name` and its children as known.
  std::vector<std::string> subtables(const std::string& name);

  /// Every table handed out so far with its Params, named as a config writes it ("[data]",
  /// "[tune.space.model.filters]"); an array of tables once per element, as "[[augment]]".
  /// The keys asked of them, with their specs, are what `bachlab config-keys` documents.
  std::vector<std::pair<std::string, const sdk::ParamTable*>> tables_read() const;

  /// True if the merged config has a table or array of tables called `name`.
  bool contains(const std::string& name) const;

  /// Every problem: those recorded in the Params handed out, plus tables that no reader
  /// asked for (with a "did you mean" against the tables that were asked for), in file and
  /// line order. Call after every reader has run.
  std::vector<sdk::ParamProblem> structured_problems() const;
  /// The text() of each of structured_problems(), as printed.
  std::vector<std::string> problems() const;

  /// Throws problems_error(path(), structured_problems()), if there are any.
  void check() const;

  /// How resolved_toml() writes relative paths.
  enum class Paths {
    /// As the files wrote them (each relative to its own file's folder).
    as_written,
    /// Every value a reader took as a path (KeySpec type "path", or "path or list of
    /// paths") made absolute against the folder of the file that wrote it, so the text
    /// means the same wherever it is saved. Keys no reader asked for are left as written.
    absolute,
  };

  /// The merged config as TOML text: what a run folder saves as config.toml, so the run
  /// can be repeated from that file alone (with Paths::absolute, from any folder).
  std::string resolved_toml(Paths paths = Paths::as_written) const;

  /// One value of the merged config: its dotted key (an element of an array of tables by
  /// its 0-based index, "augment.0.plugin", as overrides address it), its value, and the
  /// file and line (or "command line") that set it.
  struct Setting {
    std::string key;
    sdk::Value value;
    sdk::Origin origin;
  };

  /// Every value of resolved_toml(paths), in its order: what `bachlab config --origin`
  /// prints and what an MLflow run logs as its parameters.
  std::vector<Setting> settings(Paths paths = Paths::as_written) const;

 private:
  /// Removes `key` (dotted) from the merged config; throws Error if it is not there.
  void remove_key(const std::string& key, const std::string& source);
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::filesystem::path path_;
};

/// The error of a config `file` with `problems`: "<n> problem(s) in <file>:" and each
/// problem's text() on its own indented line, the problems kept for callers that act on them.
sdk::ParamsError problems_error(const std::filesystem::path& file, std::vector<sdk::ParamProblem> problems);

}  // namespace bachlab::host
