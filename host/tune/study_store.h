#pragma once
// A study's trials in a database, SQLite (WAL) or PostgreSQL, one transaction per change
// and one set of semantics for both (see sql_connection.h), so that:
//  - nothing is lost: a trial is recorded as running when it is handed out and as
//    complete or failed when it ends, each in one committed transaction;
//  - a killed study resumes exactly: the tuner is a function of the stored history, and a
//    trial that was running when its worker died is handed out again, same id, same values;
//  - several worker processes, on one machine or (PostgreSQL) on many, share one study:
//    asking the tuner and recording the answer happen in one write transaction holding
//    the study's lock, so two workers can never be given the same trial;
//  - a worker that dies anywhere loses nothing: each running trial's heartbeat is renewed
//    by its worker (TrialHeartbeat), and a trial whose heartbeat is older than the grace
//    period goes back to waiting (same id, same values) for the next worker that asks;
//  - a result is written once: completing or failing a trial that is already finished
//    changes nothing.
// The store keeps no state in memory: every call reads what it needs from the database.

#include "host/tune/sql_connection.h"

#include <bachlab/sdk/tuner.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

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
  /// Host of the worker that ran it last: where its run folder is when artifacts are
  /// kept per machine.
  std::string host;
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
/// hosts count as alive (they cannot be checked from here: their heartbeats decide).
bool owner_alive(const std::string& owner);

/// This machine's host name.
std::string this_host();

struct StoreOptions {
  /// A running trial whose heartbeat is older than this many seconds is handed back to
  /// waiting by the next claim. 0: never (no worker renews heartbeats).
  double grace_s = 0;
  /// Read the study, never write it (`tune --status`): no tables are made, no file is
  /// created, and a database without a study is an error.
  bool read_only = false;
};

class StudyStore {
 public:
  /// Opens (creating if needed) the SQLite study database at `file`. Throws Error naming
  /// the file if it cannot be opened or is not a study database.
  explicit StudyStore(const std::filesystem::path& file, StoreOptions options = {});
  /// Opens (creating the tables if needed) the study database at `storage`. Throws Error
  /// naming the URL (never a password) if it cannot be reached or is not a study database.
  explicit StudyStore(const StorageUrl& storage, StoreOptions options = {});
  ~StudyStore();
  StudyStore(const StudyStore&) = delete;
  StudyStore& operator=(const StudyStore&) = delete;

  const StorageUrl& storage() const { return storage_; }
  /// The study database in messages: its SQLite file, or its PostgreSQL URL.
  std::string where() const {
    return storage_.kind == StorageUrl::Kind::Sqlite ? storage_.file.string() : storage_.url;
  }
  const StoreOptions& options() const { return options_; }

  /// A study-wide value (config fingerprint, creation time...), or nullopt.
  std::optional<std::string> get(const std::string& key) const;
  /// Sets a study-wide value.
  void set(const std::string& key, const std::string& value);
  /// Removes a study-wide value (nothing if it is not set).
  void unset(const std::string& key);

  /// In one write transaction: hands back to waiting the running trials whose heartbeat
  /// is older than the grace period; hands out a waiting trial if there is one, otherwise
  /// asks `ask` (given the history, ordered by id) and records its proposal as a new
  /// running trial owned by `owner`. When `ask` says Done while trials still run and
  /// heartbeats are on, the answer is Wait: one of them may yet come back to waiting.
  Claim claim(const std::function<sdk::Proposal(const std::vector<sdk::TrialRecord>&)>& ask,
              const std::string& owner);

  /// Records a finished trial; `score` is the oriented objective. A trial already
  /// finished is left as it is (a result is written once).
  void complete(int64_t id, double score, double objective, int64_t epochs_used, double seconds);
  /// Records a failed trial with its message; a trial already finished is left as it is.
  void fail(int64_t id, const std::string& message, int64_t epochs_used, double seconds);

  /// Renews trial `id`'s heartbeat with the database's clock. False if `owner` no longer
  /// runs it (it was handed back after a stall, or finished).
  bool heartbeat(int64_t id, const std::string& owner);

  /// Running trials handed back to waiting because their heartbeat is older than
  /// `grace_s` seconds (by the database's clock); returns their ids. claim() calls it. A
  /// trial whose owner runs on this machine and is alive keeps it: its heartbeat is late,
  /// not its worker dead.
  std::vector<int64_t> requeue_stale(double grace_s);

  /// Marks running trials whose owner is not alive (by `alive`) as waiting to be retried,
  /// and returns their ids: a fast path for workers of this host, which need not wait for
  /// the grace period. Called when a study (re)starts.
  std::vector<int64_t> release_orphans(const std::function<bool(const std::string& owner)>& alive = owner_alive);

  /// Every trial, ordered by id.
  std::vector<StoredTrial> trials() const;

  /// Failed trials at the end of the finished trials, in order of finishing: the study
  /// stops when this reaches max_consecutive_failures.
  int64_t consecutive_failures() const;

 private:
  void create_tables();
  /// Throws Error naming the storage unless it holds a study of this schema version.
  void check_schema() const;
  std::vector<StoredTrial> read_trials() const;
  std::vector<int64_t> requeue_stale_locked(double grace_s);
  /// Runs `body` in a write transaction, rolling back if it throws.
  template <typename F>
  auto write(F&& body);

  StorageUrl storage_;
  StoreOptions options_;
  std::unique_ptr<SqlConnection> db_;
};

/// Renews a running trial's heartbeat every `interval_s` seconds from a thread of its own,
/// with a connection of its own, until destroyed (which stops the thread promptly).
/// Renewal errors (the database briefly unreachable) are retried at the next beat: a
/// worker that cannot reach the database for the grace period loses the trial to another.
class TrialHeartbeat {
 public:
  TrialHeartbeat(const StorageUrl& storage, int64_t id, std::string owner, double interval_s);
  ~TrialHeartbeat();
  TrialHeartbeat(const TrialHeartbeat&) = delete;
  TrialHeartbeat& operator=(const TrialHeartbeat&) = delete;
  /// Beats sent so far.
  int64_t beats() const { return beats_; }

 private:
  std::mutex mutex_;
  std::condition_variable stop_signal_;
  bool stop_ = false;
  std::atomic<int64_t> beats_{0};
  std::thread thread_;
};

}  // namespace bachlab::host
