#pragma once
// A study's trials on disk, in SQLite (WAL, one transaction per change), so that:
//  - nothing is lost: a trial is recorded as running when it is handed out and as
//    complete or failed when it ends, each in one committed transaction;
//  - a killed study resumes exactly: the tuner is a function of the stored history, and a
//    trial that was running when its worker died is handed out again, same id, same values;
//  - several worker processes (on one machine now, on several sharing a file system later)
//    share one study: asking the tuner and recording the answer happen in one write
//    transaction, so two workers can never be given the same trial.
// The store keeps no state in memory: every call reads what it needs from the file.

#include <bachlab/sdk/tuner.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace bachlab::host {

/// One trial as stored, with what the tuner does not see.
struct StoredTrial {
  sdk::TrialRecord record;
  /// The objective as the metric reads (not oriented); valid when complete.
  double objective = 0;
  /// Epochs this trial trained itself (a promoted trial counts only its own).
  int64_t epochs_used = 0;
  /// Seconds of training, summed over its executions.
  double seconds = 0;
  /// Why it failed; empty otherwise.
  std::string message;
  /// "host:pid:start" of the worker running it, or of the one that finished it (kept, so a
  /// study shows which worker ran what); empty while it waits to be handed out again.
  std::string owner;
  /// Times it was handed out (more than 1 after a worker died running it).
  int64_t attempts = 0;
  /// UTC times, "YYYY-mm-dd HH:MM:SS"; finished is empty while running.
  std::string started, finished;
};

/// "running", "complete" or "failed".
std::string state_name(sdk::TrialRecord::State state);

/// What a worker is told to do next.
struct Claim {
  enum class Kind { Run, Wait, Done };
  Kind kind = Kind::Done;
  /// The trial to run (Kind::Run): its id, values, epochs and the trial it continues.
  sdk::TrialRecord trial;
  /// True if it was handed out before and its worker died: continue what it left.
  bool retry = false;
};

/// This process as a trial owner: "<hostname>:<pid>:<process start time>". The start time
/// tells a live process from a later one that reused the pid.
std::string this_process_owner();

/// True unless `owner` is a process of this host that no longer runs. Owners on other
/// hosts count as alive (they cannot be checked from here).
bool owner_alive(const std::string& owner);

class StudyStore {
 public:
  /// Opens (creating if needed) the study database at `file`. Throws Error naming the
  /// file if it cannot be opened or is not a study database.
  explicit StudyStore(const std::filesystem::path& file);
  ~StudyStore();
  StudyStore(const StudyStore&) = delete;
  StudyStore& operator=(const StudyStore&) = delete;

  const std::filesystem::path& file() const { return file_; }

  /// A study-wide value (config fingerprint, creation time...), or nullopt.
  std::optional<std::string> get(const std::string& key) const;
  /// Sets a study-wide value.
  void set(const std::string& key, const std::string& value);

  /// In one write transaction: hands out a trial whose worker died if there is one,
  /// otherwise asks `ask` (given the history, ordered by id) and records its proposal as
  /// a new running trial owned by `owner`.
  Claim claim(const std::function<sdk::Proposal(const std::vector<sdk::TrialRecord>&)>& ask,
              const std::string& owner);

  /// Records a finished trial; `score` is the oriented objective.
  void complete(int64_t id, double score, double objective, int64_t epochs_used, double seconds);
  /// Records a failed trial with its message.
  void fail(int64_t id, const std::string& message, int64_t epochs_used, double seconds);

  /// Marks running trials whose owner is not alive (by `alive`) as waiting to be retried,
  /// and returns their ids. Called when a study (re)starts.
  std::vector<int64_t> release_orphans(const std::function<bool(const std::string& owner)>& alive = owner_alive);

  /// Every trial, ordered by id.
  std::vector<StoredTrial> trials() const;

  /// Failed trials at the end of the finished trials, in order of finishing: the study
  /// stops when this reaches max_consecutive_failures.
  int64_t consecutive_failures() const;

 private:
  void exec(const std::string& sql) const;
  std::vector<StoredTrial> read_trials() const;

  std::filesystem::path file_;
  sqlite3* db_ = nullptr;
};

}  // namespace bachlab::host
