#pragma once
// Starting, resuming and joining a study: what the store records about a study the first
// time, and what a later start may change. A study is resumed or joined only under the
// config it started with (a digest of the merged config, data settings included), with one
// exception: `--resume` may change [tune] max_trials. Raising it lets a finished study take
// more trials; the tuner, a function of the stored history, sees every earlier trial and
// goes on exactly as a study started with the larger max_trials would have. Lowering it
// below the trials the study already has is refused: a study keeps its trials.

#include "host/tune/study_store.h"
#include "host/tune/study_config.h"

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <string>

namespace bachlab::host {

/// How `bachlab tune` comes to a study.
enum class StudyOpening {
  /// A new study; one that exists is refused (pointing at --resume and --join).
  start,
  /// Continue the study that exists (under its config; max_trials may change).
  resume,
  /// Add workers to a study that exists elsewhere (under its config, max_trials included).
  join,
};

/// A digest of a study config's merged text (Config::resolved_toml()), [tune] max_trials
/// left out: a study resumes only under a config with the same digest.
std::string study_fingerprint(const std::string& resolved_toml);

/// Opens the study in `store` as `how` says: records the study (its config, digest, tuner,
/// objective, max_trials) the first time; later checks that `resolved_toml` is the config
/// the study started with and records a max_trials that --resume changed (a finished
/// study that takes more trials is no longer finished). Throws Error saying what differs
/// and what to do otherwise. `folder` names the study in messages when it is stored in
/// SQLite; `log` (may be null) hears of a changed max_trials.
void open_study(StudyStore& store, const StudyConfig& study, const std::string& resolved_toml, StudyOpening how,
                const std::filesystem::path& folder, std::ostream* log = nullptr);

}  // namespace bachlab::host
