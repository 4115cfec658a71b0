#include "host/tune/study_open.h"

#include "host/config/toml_text.h"
#include "host/util/time_text.h"

#include <bachlab/sdk/error.h>
#include <bachlab/sdk/hash.h>

#include <fmt/format.h>
#include <toml++/toml.h>

#include <ostream>
#include <set>
#include <sstream>

namespace bachlab::host {

namespace fs = std::filesystem;

namespace {

// The digest studies recorded before max_trials could change: of the whole text.
std::string whole_text_digest(const std::string& resolved_toml) {
  return fmt::format("{:016x}", sdk::hash_text(resolved_toml));
}

// The lines of `mine` and `theirs` that the other lacks, for saying how two configs differ.
std::string config_difference(const std::string& theirs, const std::string& mine) {
  auto lines = [](const std::string& text) {
    std::multiset<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.insert(line);
    return out;
  };
  const auto a = lines(theirs), b = lines(mine);
  std::string out;
  for (const auto& line : a)
    if (!b.count(line)) out += "\n  study:  " + line;
  for (const auto& line : b)
    if (!a.count(line)) out += "\n  yours:  " + line;
  return out.empty() ? "\n  (the same settings in another order)" : out;
}

// True if `fingerprint` is the digest the study started with. A study made before
// max_trials could change recorded the digest of its whole config: it is recognised by its
// recorded config, and its digest is brought up to date.
bool same_config(StudyStore& store, const std::string& stored, const std::string& fingerprint) {
  if (stored == fingerprint) return true;
  const auto theirs = store.get("resolved_config");
  if (!theirs || stored != whole_text_digest(*theirs) || study_fingerprint(*theirs) != fingerprint) return false;
  store.set("fingerprint", fingerprint);
  return true;
}

// A study config's merged text without [tune] max_trials, which a resume may change.
std::string without_max_trials(const std::string& resolved_toml) {
  toml::table root;
  try {
    root = toml::parse(resolved_toml);
  } catch (const toml::parse_error& e) {
    throw Error("the study's config does not read back as TOML (" + std::string(e.description()) + ")");
  }
  if (auto* tune = root["tune"].as_table()) tune->erase("max_trials");
  return toml_digest_text(root);
}

}  // namespace

std::string study_fingerprint(const std::string& resolved_toml) {
  return whole_text_digest(without_max_trials(resolved_toml));
}

void open_study(StudyStore& store, const StudyConfig& study, const std::string& resolved_toml, StudyOpening how,
                const fs::path& folder, std::ostream* log) {
  const std::string& where = store.storage().url;
  const std::string fingerprint = study_fingerprint(resolved_toml);
  const int64_t max_trials = study.settings.max_trials;
  const auto existing = store.get("fingerprint");
  if (!existing && how == StudyOpening::join)
    throw Error(fmt::format("{}: there is no study to join in {}; start it first with `bachlab tune {}` (on any "
                            "machine), then join",
                            study.file.string(), where, study.file.string()));
  if (!existing) {
    store.set("resolved_config", resolved_toml);
    store.set("fingerprint", fingerprint);
    store.set("config", fs::absolute(study.file).lexically_normal().string());
    store.set("tuner", study.settings.tuner);
    store.set("objective", study.settings.objective);
    store.set("direction", study.settings.maximize ? "max" : "min");
    store.set("max_trials", std::to_string(max_trials));
    store.set("created", now_text("%Y-%m-%d %H:%M:%S", TimeZone::utc));
    return;
  }
  const auto trials = store.trials();
  if (how == StudyOpening::start)
    throw Error(fmt::format("{}: a study is already there ({} trials); continue it with `bachlab tune {} --resume`, "
                            "add workers to it with --join, or set another [tune] folder (or --folder) or storage "
                            "for a new study",
                            store.storage().kind == StorageUrl::Kind::Postgres ? where : folder.string(),
                            trials.size(), study.file.string()));
  if (!same_config(store, *existing, fingerprint)) {
    const auto theirs = store.get("resolved_config");
    const std::string difference =
        theirs ? config_difference(without_max_trials(*theirs), without_max_trials(resolved_toml))
               : " (the study did not record its settings)";
    throw Error(fmt::format("{}: this config differs from the one the study in {} started with ({}); a worker joins "
                            "and a study resumes only under the config it started with, data settings included "
                            "([tune] max_trials alone may change, with --resume): restore the config, or start a "
                            "new study with another [tune] folder or storage. What differs:{}",
                            study.file.string(), where, store.get("config").value_or("?"), difference));
  }

  const int64_t before = std::stoll(store.get("max_trials").value_or(std::to_string(max_trials)));
  if (max_trials == before) return;
  if (how == StudyOpening::join)
    throw Error(fmt::format("{}: max_trials = {}, but the study in {} runs up to {} trials; join with its max_trials "
                            "(`bachlab tune {} --join tune.max_trials={}`), or change it with --resume on the machine "
                            "that started the study",
                            study.file.string(), max_trials, where, before, study.file.string(), before));
  const auto have = static_cast<int64_t>(trials.size());
  if (max_trials < have) {
    int64_t finished = 0;
    for (const auto& t : trials) finished += t.record.state != sdk::TrialRecord::State::Running;
    throw Error(fmt::format("{}: max_trials = {} is below the {} trials the study in {} already has ({} finished{}); "
                            "a study keeps its trials: give max_trials = {} or more, e.g. `bachlab tune {} --resume "
                            "tune.max_trials={}`",
                            study.file.string(), max_trials, have, where, finished,
                            finished < have ? fmt::format(", {} to run again", have - finished) : "", have,
                            study.file.string(), std::max(have, before)));
  }
  // The recorded config is the one the study now runs under, so that a later difference
  // is shown against it.
  store.set("resolved_config", resolved_toml);
  store.set("max_trials", std::to_string(max_trials));
  if (max_trials > have) store.unset("finished");
  if (log)
    *log << fmt::format("the study goes on up to {} trials (it had max_trials = {}, and has {} {})\n", max_trials,
                        before, have, have == 1 ? "trial" : "trials");
}

}  // namespace bachlab::host
