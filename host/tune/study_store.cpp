#include "host/tune/study_store.h"

#include "host/util/process.h"
#include "host/util/time_text.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>
#include <sstream>
#include <thread>
#include <type_traits>

namespace bachlab::host {

namespace fs = std::filesystem;
using sdk::TrialRecord;

namespace {

// 2: heartbeat and host columns, state "waiting". A schema-1 file gains them on opening.
constexpr int kSchemaVersion = 2;

std::string utc_now() { return now_text("%Y-%m-%d %H:%M:%S", TimeZone::utc); }

// Field 22 of /proc/<pid>/stat: the process start time in clock ticks since boot.
std::string process_start(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');  // the command name may hold spaces and parentheses
  if (close == std::string::npos) return "";
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i)
    if (i == 22) return field;
  return "";
}

std::string host_name_of_machine() {
  char buffer[256] = {};
  if (gethostname(buffer, sizeof buffer - 1) != 0) return "localhost";
  return buffer;
}

// A damaged row is an error naming the database and the trial: an unknown state taken for
// "running" would wait for that trial for ever.
[[noreturn]] void bad_row(const fs::path& file, int64_t id, const std::string& what) {
  throw Error(fmt::format("{}: trial {} is damaged in the study database ({}); restore study.db from a copy, or "
                          "start the study again in a new folder",
                          file.string(), id, what));
}

TrialRecord::State parse_state(const std::string& text, const fs::path& file, int64_t id) {
  if (text == "complete") return TrialRecord::State::Complete;
  if (text == "failed") return TrialRecord::State::Failed;
  // A waiting trial (requeued after its heartbeat stopped) is one the tuner sees as running.
  if (text == "running" || text == "waiting") return TrialRecord::State::Running;
  bad_row(file, id, "its state is \"" + text + "\"; expected running, waiting, complete or failed");
}

nlohmann::json params_to_json(const sdk::Assignment& params) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [name, value] : params) std::visit([&](auto&& v) { out[name] = v; }, value);
  return out;
}

sdk::Assignment params_from_json(const std::string& text, const fs::path& file, int64_t id) {
  sdk::Assignment out;
  nlohmann::json json;  // items() only references it
  try {
    json = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    bad_row(file, id, "its params are not JSON: " + std::string(e.what()));
  }
  if (!json.is_object()) bad_row(file, id, "its params are not a JSON object: " + text);
  for (const auto& [name, value] : json.items()) {
    if (value.is_boolean()) out[name] = value.get<bool>();
    else if (value.is_number_integer()) out[name] = value.get<int64_t>();
    else if (value.is_number_float()) out[name] = value.get<double>();
    else if (value.is_string()) out[name] = value.get<std::string>();
    else bad_row(file, id, "its param \"" + name + "\" is " + value.dump() + ", not a number, bool or string");
  }
  return out;
}

const char* kTrialColumns =
    "id, state, params, epochs, resume_from, score, objective, epochs_used, seconds, message, owner, attempts, "
    "started, finished, host";

int64_t as_int(const std::optional<std::string>& v) { return v ? std::stoll(*v) : 0; }
double as_real(const std::optional<std::string>& v) { return v ? std::stod(*v) : std::nan(""); }
std::string as_text(const std::optional<std::string>& v) { return v.value_or(""); }

StoredTrial read_row(const SqlRow& r, const fs::path& where) {
  StoredTrial t;
  t.record.id = as_int(r[0]);
  t.record.state = parse_state(as_text(r[1]), where, t.record.id);
  t.record.params = params_from_json(as_text(r[2]), where, t.record.id);
  t.record.epochs = as_int(r[3]);
  t.record.resume_from = as_int(r[4]);
  t.record.score = as_real(r[5]);
  t.objective = as_real(r[6]);
  t.epochs_used = as_int(r[7]);
  t.seconds = r[8] ? std::stod(*r[8]) : 0;
  t.message = as_text(r[9]);
  t.owner = as_text(r[10]);
  t.attempts = as_int(r[11]);
  t.started = as_text(r[12]);
  t.finished = as_text(r[13]);
  t.host = as_text(r[14]);
  return t;
}

}  // namespace

std::string state_name(TrialRecord::State state) {
  switch (state) {
    case TrialRecord::State::Complete: return "complete";
    case TrialRecord::State::Failed: return "failed";
    case TrialRecord::State::Running: break;
  }
  return "running";
}

std::string this_process_owner() {
  const long pid = static_cast<long>(getpid());
  return this_host() + ":" + std::to_string(pid) + ":" + process_start(pid);
}

bool owner_alive(const std::string& owner) {
  const auto first = owner.find(':');
  const auto second = owner.rfind(':');
  if (first == std::string::npos || second == first) return false;
  if (owner.substr(0, first) != this_host()) return true;
  long pid = 0;
  try {
    pid = std::stol(owner.substr(first + 1, second - first - 1));
  } catch (const std::exception&) {
    return false;
  }
  if (!process_runs(pid)) return false;
  return process_start(pid) == owner.substr(second + 1);
}

std::string this_host() { return host_name_of_machine(); }

StudyStore::StudyStore(const fs::path& file, StoreOptions options) : StudyStore(sqlite_storage(file), options) {}

StudyStore::StudyStore(const StorageUrl& storage, StoreOptions options)
    : storage_(storage), options_(options), db_(open_sql_connection(storage, options.read_only)) {
  if (options.read_only) {
    check_schema();
    return;
  }
  if (!db_->postgres()) {
    db_->run("PRAGMA journal_mode=WAL");
    db_->run("PRAGMA synchronous=FULL");
  }
  create_tables();
}

StudyStore::~StudyStore() = default;

template <typename F>
auto StudyStore::write(F&& body) {
  db_->begin_write();
  try {
    if constexpr (std::is_void_v<decltype(body())>) {
      body();
      db_->commit();
    } else {
      auto out = body();
      db_->commit();
      return out;
    }
  } catch (...) {
    db_->rollback();
    throw;
  }
}

void StudyStore::create_tables() {
  const std::string& where = storage_.url;
  // Most openings find the study made: a read, so that workers opening connections (one
  // per trial's heartbeat) do not queue for the write lock.
  try {
    const auto schema = db_->run("SELECT value FROM study WHERE key = 'schema'");
    if (!schema.rows.empty() && as_text(schema.rows[0][0]) == std::to_string(kSchemaVersion)) return;
  } catch (const Error&) {
    // No tables yet (or not a study database): the write transaction below says which.
  }
  try {
    write([&] {
      // Several workers may start on an empty database at once: the study lock makes one
      // of them create the tables and the others find them.
      db_->lock_study();
      db_->run("CREATE TABLE IF NOT EXISTS study (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
      db_->run(
          "CREATE TABLE IF NOT EXISTS trials ("
          "id BIGINT PRIMARY KEY, state TEXT NOT NULL, params TEXT NOT NULL, epochs BIGINT NOT NULL, "
          "resume_from BIGINT NOT NULL, score DOUBLE PRECISION, objective DOUBLE PRECISION, "
          "epochs_used BIGINT NOT NULL DEFAULT 0, seconds DOUBLE PRECISION NOT NULL DEFAULT 0, "
          "message TEXT NOT NULL DEFAULT '', owner TEXT NOT NULL DEFAULT '', attempts BIGINT NOT NULL DEFAULT 1, "
          "started TEXT NOT NULL, finished TEXT NOT NULL DEFAULT '', finish_order BIGINT, "
          "heartbeat DOUBLE PRECISION, host TEXT NOT NULL DEFAULT '')");
      const auto schema = db_->run("SELECT value FROM study WHERE key = 'schema'");
      if (schema.rows.empty()) {
        db_->run("INSERT INTO study (key, value) VALUES ('schema', ?)", {std::to_string(kSchemaVersion)});
      } else if (as_text(schema.rows[0][0]) == "1") {
        // Made before heartbeats: the columns are added, nothing else changes.
        db_->run("ALTER TABLE trials ADD COLUMN heartbeat DOUBLE PRECISION");
        db_->run("ALTER TABLE trials ADD COLUMN host TEXT NOT NULL DEFAULT ''");
        db_->run("UPDATE trials SET state = 'waiting' WHERE state = 'running' AND owner = ''");
        db_->run("UPDATE study SET value = ? WHERE key = 'schema'", {std::to_string(kSchemaVersion)});
      }
    });
  } catch (const Error& e) {
    throw Error(where + ": not a bachlab study database (" + e.what() +
                "); remove it or choose another [tune] folder or storage");
  }
  check_schema();
}

void StudyStore::check_schema() const {
  std::optional<std::string> schema;
  try {
    schema = get("schema");
  } catch (const Error& e) {
    throw Error(storage_.url + ": not a bachlab study database (" + e.what() + ")");
  }
  if (schema != std::to_string(kSchemaVersion))
    throw Error(storage_.url + ": study database schema " + schema.value_or("(none)") + ", expected " +
                std::to_string(kSchemaVersion) + "; it was made by another bachlab version: start a new study");
}

std::optional<std::string> StudyStore::get(const std::string& key) const {
  const auto r = db_->run("SELECT value FROM study WHERE key = ?", {key});
  if (r.rows.empty()) return std::nullopt;
  return as_text(r.rows[0][0]);
}

void StudyStore::set(const std::string& key, const std::string& value) {
  db_->run("INSERT INTO study (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
           {key, value});
}

void StudyStore::unset(const std::string& key) { db_->run("DELETE FROM study WHERE key = ?", {key}); }

std::vector<StoredTrial> StudyStore::read_trials() const {
  const auto r = db_->run(std::string("SELECT ") + kTrialColumns + " FROM trials ORDER BY id");
  std::vector<StoredTrial> out;
  for (const auto& row : r.rows) out.push_back(read_row(row, where()));
  return out;
}

std::vector<StoredTrial> StudyStore::trials() const { return read_trials(); }

std::vector<int64_t> StudyStore::requeue_stale_locked(double grace_s) {
  // Heartbeats are compared on the database's clock alone (it wrote them too): the
  // workers' clocks may differ by more than the grace period across machines.
  const auto stale = db_->run("SELECT id, owner FROM trials WHERE state = 'running' AND heartbeat IS NOT NULL AND "
                              "heartbeat < " + db_->now_seconds() + " - ?",
                              {grace_s});
  std::vector<int64_t> ids;
  for (const auto& row : stale.rows) {
    // An owner this machine sees running has a heartbeat held up, not a dead worker: 64
    // SQLite writers kept one waiting 4 s for the write lock, past a 5 s grace with its
    // last beat. Only the heartbeat can speak for owners on other machines.
    const std::string owner = as_text(row[1]);
    if (owner.substr(0, owner.find(':')) == this_host() && owner_alive(owner)) continue;
    db_->run("UPDATE trials SET state = 'waiting', owner = '' WHERE id = ? AND state = 'running'", {as_int(row[0])});
    ids.push_back(as_int(row[0]));
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::vector<int64_t> StudyStore::requeue_stale(double grace_s) {
  return write([&] { return requeue_stale_locked(grace_s); });
}

Claim StudyStore::claim(const std::function<sdk::Proposal(const std::vector<TrialRecord>&)>& ask,
                        const std::string& owner) {
  const std::string now = db_->now_seconds();
  return write([&] {
    if (options_.grace_s > 0) requeue_stale_locked(options_.grace_s);
    Claim claim;
    // A waiting trial first. On PostgreSQL SKIP LOCKED lets concurrent workers each take a
    // different one without queueing behind each other; SQLite's write lock serialises.
    const auto waiting =
        db_->run(std::string("SELECT ") + kTrialColumns + " FROM trials WHERE state = 'waiting' ORDER BY id LIMIT 1" +
                 db_->skip_locked());
    if (!waiting.rows.empty()) {
      claim.kind = Claim::Kind::Run;
      claim.trial = read_row(waiting.rows[0], where()).record;
      claim.retry = true;
      db_->run("UPDATE trials SET state = 'running', owner = ?, host = ?, attempts = attempts + 1, started = ?, "
               "heartbeat = " + now + " WHERE id = ?",
               {owner, this_host(), utc_now(), claim.trial.id});
      return claim;
    }
    // A new trial: the tuner is a function of the whole history, so asking it and
    // recording its answer hold the study's lock (PostgreSQL; SQLite's BEGIN IMMEDIATE
    // already did). Row locks with SKIP LOCKED cannot do this: the new row does not exist yet.
    db_->lock_study();
    std::vector<TrialRecord> history;
    for (auto& t : read_trials()) history.push_back(std::move(t.record));
    const sdk::Proposal proposal = ask(history);
    if (proposal.kind != sdk::Proposal::Kind::Run) {
      claim.kind = proposal.kind == sdk::Proposal::Kind::Wait ? Claim::Kind::Wait : Claim::Kind::Done;
      const bool unfinished = std::any_of(history.begin(), history.end(), [](const TrialRecord& t) {
        return t.state == TrialRecord::State::Running;
      });
      if (claim.kind == Claim::Kind::Done && unfinished && options_.grace_s > 0) claim.kind = Claim::Kind::Wait;
      return claim;
    }
    claim.kind = Claim::Kind::Run;
    claim.trial.id = static_cast<int64_t>(history.size());
    claim.trial.state = TrialRecord::State::Running;
    claim.trial.params = proposal.params;
    claim.trial.epochs = proposal.epochs;
    claim.trial.resume_from = proposal.resume_from;
    db_->run("INSERT INTO trials (id, state, params, epochs, resume_from, owner, host, started, heartbeat) "
             "VALUES (?, 'running', ?, ?, ?, ?, ?, ?, " + now + ")",
             {claim.trial.id, params_to_json(proposal.params).dump(), proposal.epochs, proposal.resume_from, owner,
              this_host(), utc_now()});
    return claim;
  });
}

void StudyStore::complete(int64_t id, double score, double objective, int64_t epochs_used, double seconds) {
  write([&] {
    db_->lock_study();  // finish_order is the study's sequence
    db_->run("UPDATE trials SET state = 'complete', score = ?, objective = ?, epochs_used = ?, seconds = ?, "
             "message = '', finished = ?, "
             "finish_order = (SELECT COALESCE(MAX(finish_order), 0) + 1 FROM trials) "
             "WHERE id = ? AND state IN ('running', 'waiting')",
             {score, objective, epochs_used, seconds, utc_now(), id});
  });
}

void StudyStore::fail(int64_t id, const std::string& message, int64_t epochs_used, double seconds) {
  write([&] {
    db_->lock_study();
    db_->run("UPDATE trials SET state = 'failed', message = ?, epochs_used = ?, seconds = ?, "
             "finished = ?, finish_order = (SELECT COALESCE(MAX(finish_order), 0) + 1 FROM trials) "
             "WHERE id = ? AND state IN ('running', 'waiting')",
             {message, epochs_used, seconds, utc_now(), id});
  });
}

bool StudyStore::heartbeat(int64_t id, const std::string& owner) {
  const auto r = db_->run("UPDATE trials SET heartbeat = " + db_->now_seconds() +
                              " WHERE id = ? AND owner = ? AND state = 'running'",
                          {id, owner});
  return r.changed > 0;
}

std::vector<int64_t> StudyStore::release_orphans(const std::function<bool(const std::string&)>& alive) {
  return write([&] {
    std::vector<int64_t> released;
    const auto r = db_->run("SELECT id, owner FROM trials WHERE state = 'running' ORDER BY id");
    for (const auto& row : r.rows) {
      const std::string owner = as_text(row[1]);
      if (!owner.empty() && alive(owner)) continue;
      db_->run("UPDATE trials SET state = 'waiting', owner = '' WHERE id = ?", {as_int(row[0])});
      released.push_back(as_int(row[0]));
    }
    return released;
  });
}

int64_t StudyStore::consecutive_failures() const {
  const auto r = db_->run("SELECT state FROM trials WHERE finish_order IS NOT NULL ORDER BY finish_order DESC");
  int64_t count = 0;
  for (const auto& row : r.rows) {
    if (as_text(row[0]) != "failed") break;
    ++count;
  }
  return count;
}

TrialHeartbeat::TrialHeartbeat(const StorageUrl& storage, int64_t id, std::string owner, double interval_s) {
  // Connect before returning, so that a database that cannot be reached fails the trial
  // at its start rather than silently letting it go stale.
  auto store = std::make_shared<StudyStore>(storage);
  const auto interval = std::chrono::duration<double>(interval_s);
  thread_ = std::thread([this, store, id, owner = std::move(owner), interval] {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      lock.unlock();
      try {
        store->heartbeat(id, owner);
        ++beats_;
      } catch (const std::exception&) {
        // Retried at the next beat; the grace period decides what a long outage means.
      }
      lock.lock();
      if (stop_signal_.wait_for(lock, interval, [this] { return stop_; })) return;
    }
  });
}

TrialHeartbeat::~TrialHeartbeat() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  stop_signal_.notify_all();
  thread_.join();
}

}  // namespace bachlab::host
