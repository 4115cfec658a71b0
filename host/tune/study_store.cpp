#include "host/tune/study_store.h"

#include "host/util/time_text.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <ctime>
#include <fstream>
#include <sstream>
#include <thread>

namespace bachlab::host {

namespace fs = std::filesystem;
using sdk::TrialRecord;

namespace {

constexpr int kSchemaVersion = 1;

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

std::string host_name() {
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
  if (text == "running") return TrialRecord::State::Running;
  bad_row(file, id, "its state is \"" + text + "\"; expected running, complete or failed");
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

// One prepared statement, finalised on every path.
class Statement {
 public:
  Statement(sqlite3* db, const std::string& sql, const fs::path& file) : db_(db), file_(file) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt_, nullptr) != SQLITE_OK)
      throw Error(file.string() + ": study database error (" + sqlite3_errmsg(db) + ") in: " + sql);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int i, int64_t v) { return check(sqlite3_bind_int64(stmt_, i, v)); }
  Statement& bind(int i, double v) {
    // SQLite stores NaN as NULL; the objective of a complete trial is always finite.
    return check(std::isfinite(v) ? sqlite3_bind_double(stmt_, i, v) : sqlite3_bind_null(stmt_, i));
  }
  Statement& bind(int i, const std::string& v) {
    return check(sqlite3_bind_text(stmt_, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }

  /// True while there is a row.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw Error(file_.string() + ": study database error (" + sqlite3_errmsg(db_) + ")");
  }
  int64_t integer(int c) const { return sqlite3_column_int64(stmt_, c); }
  double real(int c) const {
    return sqlite3_column_type(stmt_, c) == SQLITE_NULL ? std::nan("") : sqlite3_column_double(stmt_, c);
  }
  std::string text(int c) const {
    const auto* p = sqlite3_column_text(stmt_, c);
    return p ? reinterpret_cast<const char*>(p) : "";
  }

 private:
  Statement& check(int rc) {
    if (rc != SQLITE_OK) throw Error(file_.string() + ": study database error (" + sqlite3_errmsg(db_) + ")");
    return *this;
  }
  sqlite3* db_;
  fs::path file_;
  sqlite3_stmt* stmt_ = nullptr;
};

const char* kTrialColumns =
    "id, state, params, epochs, resume_from, score, objective, epochs_used, seconds, message, owner, attempts, "
    "started, finished";

StoredTrial read_row(const Statement& s, const fs::path& file) {
  StoredTrial t;
  t.record.id = s.integer(0);
  t.record.state = parse_state(s.text(1), file, t.record.id);
  t.record.params = params_from_json(s.text(2), file, t.record.id);
  t.record.epochs = s.integer(3);
  t.record.resume_from = s.integer(4);
  t.record.score = s.real(5);
  t.objective = s.real(6);
  t.epochs_used = s.integer(7);
  t.seconds = s.real(8);
  t.message = s.text(9);
  t.owner = s.text(10);
  t.attempts = s.integer(11);
  t.started = s.text(12);
  t.finished = s.text(13);
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
  return host_name() + ":" + std::to_string(pid) + ":" + process_start(pid);
}

bool owner_alive(const std::string& owner) {
  const auto first = owner.find(':');
  const auto second = owner.rfind(':');
  if (first == std::string::npos || second == first) return false;
  if (owner.substr(0, first) != host_name()) return true;
  long pid = 0;
  try {
    pid = std::stol(owner.substr(first + 1, second - first - 1));
  } catch (const std::exception&) {
    return false;
  }
  if (pid <= 0 || (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)) return false;
  return process_start(pid) == owner.substr(second + 1);
}

StudyStore::StudyStore(const fs::path& file) : file_(file) {
  if (sqlite3_open_v2(file.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string reason = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(file.string() + ": cannot open the study database (" + reason +
                "); check that the study folder is writable");
  }
  // Workers wait for each other's short transactions instead of failing with SQLITE_BUSY.
  sqlite3_busy_timeout(db_, 60000);
  try {
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=FULL");
    exec("BEGIN IMMEDIATE");
    exec("CREATE TABLE IF NOT EXISTS study (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    exec("CREATE TABLE IF NOT EXISTS trials ("
         "id INTEGER PRIMARY KEY, state TEXT NOT NULL, params TEXT NOT NULL, epochs INTEGER NOT NULL, "
         "resume_from INTEGER NOT NULL, score REAL, objective REAL, epochs_used INTEGER NOT NULL DEFAULT 0, "
         "seconds REAL NOT NULL DEFAULT 0, message TEXT NOT NULL DEFAULT '', owner TEXT NOT NULL DEFAULT '', "
         "attempts INTEGER NOT NULL DEFAULT 1, started TEXT NOT NULL, finished TEXT NOT NULL DEFAULT '', "
         "finish_order INTEGER)");
    exec("INSERT OR IGNORE INTO study (key, value) VALUES ('schema', '" + std::to_string(kSchemaVersion) + "')");
    exec("COMMIT");
  } catch (const Error& e) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(file.string() + ": not a bachlab study database (" + e.what() +
                "); remove the file or choose another [tune] folder");
  }
  auto schema = get("schema");
  if (schema != std::to_string(kSchemaVersion)) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(file.string() + ": study database schema " + schema.value_or("(none)") + ", expected " +
                std::to_string(kSchemaVersion) + "; it was made by another bachlab version: start a new study folder");
  }
}

StudyStore::~StudyStore() {
  if (db_) sqlite3_close(db_);
}

void StudyStore::exec(const std::string& sql) const {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    std::string reason = error ? error : "unknown error";
    sqlite3_free(error);
    throw Error(file_.string() + ": study database error (" + reason + ") in: " + sql);
  }
}

std::optional<std::string> StudyStore::get(const std::string& key) const {
  Statement s(db_, "SELECT value FROM study WHERE key = ?", file_);
  s.bind(1, key);
  if (!s.step()) return std::nullopt;
  return s.text(0);
}

void StudyStore::set(const std::string& key, const std::string& value) {
  Statement s(db_, "INSERT INTO study (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
              file_);
  s.bind(1, key).bind(2, value);
  s.step();
}

std::vector<StoredTrial> StudyStore::read_trials() const {
  Statement s(db_, std::string("SELECT ") + kTrialColumns + " FROM trials ORDER BY id", file_);
  std::vector<StoredTrial> out;
  while (s.step()) out.push_back(read_row(s, file_));
  return out;
}

std::vector<StoredTrial> StudyStore::trials() const { return read_trials(); }

Claim StudyStore::claim(const std::function<sdk::Proposal(const std::vector<TrialRecord>&)>& ask,
                        const std::string& owner) {
  // IMMEDIATE takes the write lock before reading, so the history the tuner sees cannot
  // change before its answer is recorded.
  exec("BEGIN IMMEDIATE");
  try {
    Claim claim;
    {
      Statement orphan(db_, std::string("SELECT ") + kTrialColumns +
                                " FROM trials WHERE state = 'running' AND owner = '' ORDER BY id LIMIT 1",
                       file_);
      if (orphan.step()) {
        claim.kind = Claim::Kind::Run;
        claim.trial = read_row(orphan, file_).record;
        claim.retry = true;
      }
    }
    if (claim.retry) {
      Statement update(db_, "UPDATE trials SET owner = ?, attempts = attempts + 1, started = ? WHERE id = ?", file_);
      update.bind(1, owner).bind(2, utc_now()).bind(3, claim.trial.id);
      update.step();
      exec("COMMIT");
      return claim;
    }
    std::vector<TrialRecord> history;
    for (auto& t : read_trials()) history.push_back(std::move(t.record));
    const sdk::Proposal proposal = ask(history);
    if (proposal.kind != sdk::Proposal::Kind::Run) {
      exec("COMMIT");
      claim.kind = proposal.kind == sdk::Proposal::Kind::Wait ? Claim::Kind::Wait : Claim::Kind::Done;
      return claim;
    }
    claim.kind = Claim::Kind::Run;
    claim.trial.id = static_cast<int64_t>(history.size());
    claim.trial.state = TrialRecord::State::Running;
    claim.trial.params = proposal.params;
    claim.trial.epochs = proposal.epochs;
    claim.trial.resume_from = proposal.resume_from;
    Statement insert(db_,
                     "INSERT INTO trials (id, state, params, epochs, resume_from, owner, started) "
                     "VALUES (?, 'running', ?, ?, ?, ?, ?)",
                     file_);
    insert.bind(1, claim.trial.id)
        .bind(2, params_to_json(proposal.params).dump())
        .bind(3, proposal.epochs)
        .bind(4, proposal.resume_from)
        .bind(5, owner)
        .bind(6, utc_now());
    insert.step();
    exec("COMMIT");
    return claim;
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

void StudyStore::complete(int64_t id, double score, double objective, int64_t epochs_used, double seconds) {
  exec("BEGIN IMMEDIATE");
  try {
    Statement s(db_,
                "UPDATE trials SET state = 'complete', score = ?, objective = ?, epochs_used = ?, seconds = ?, "
                "message = '', finished = ?, "
                "finish_order = (SELECT COALESCE(MAX(finish_order), 0) + 1 FROM trials) WHERE id = ?",
                file_);
    s.bind(1, score).bind(2, objective).bind(3, epochs_used).bind(4, seconds).bind(5, utc_now()).bind(6, id);
    s.step();
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

void StudyStore::fail(int64_t id, const std::string& message, int64_t epochs_used, double seconds) {
  exec("BEGIN IMMEDIATE");
  try {
    Statement s(db_,
                "UPDATE trials SET state = 'failed', message = ?, epochs_used = ?, seconds = ?, "
                "finished = ?, finish_order = (SELECT COALESCE(MAX(finish_order), 0) + 1 FROM trials) WHERE id = ?",
                file_);
    s.bind(1, message).bind(2, epochs_used).bind(3, seconds).bind(4, utc_now()).bind(5, id);
    s.step();
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

std::vector<int64_t> StudyStore::release_orphans(const std::function<bool(const std::string&)>& alive) {
  std::vector<int64_t> released;
  exec("BEGIN IMMEDIATE");
  try {
    std::vector<std::pair<int64_t, std::string>> running;
    {
      Statement s(db_, "SELECT id, owner FROM trials WHERE state = 'running' AND owner != '' ORDER BY id", file_);
      while (s.step()) running.emplace_back(s.integer(0), s.text(1));
    }
    for (const auto& [id, owner] : running) {
      if (alive(owner)) continue;
      Statement u(db_, "UPDATE trials SET owner = '' WHERE id = ?", file_);
      u.bind(1, id);
      u.step();
      released.push_back(id);
    }
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  return released;
}

int64_t StudyStore::consecutive_failures() const {
  Statement s(db_, "SELECT state FROM trials WHERE finish_order IS NOT NULL ORDER BY finish_order DESC", file_);
  int64_t count = 0;
  while (s.step() && s.text(0) == "failed") ++count;
  return count;
}

}  // namespace bachlab::host
