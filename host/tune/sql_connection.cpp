#include "host/tune/sql_connection.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include <cmath>

namespace bachlab::host {

namespace fs = std::filesystem;

namespace {

// Shortest text that reads back as the same double, so both backends hand the store
// identical values.
std::string double_text(double v) { return fmt::format("{}", v); }

class SqliteConnection final : public SqlConnection {
 public:
  SqliteConnection(const StorageUrl& storage, bool read_only) : SqlConnection(storage.url), file_(storage.file) {
    // SQLite keeps its journal beside the file: /dev/null or a folder would get one there.
    std::error_code error;
    if (fs::exists(file_, error) && !fs::is_regular_file(file_, error))
      throw Error(file_.string() + ": not a regular file; a study database is a file of its own (e.g. "
                                   "sqlite:///data/study.db)");
    const int mode = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    if (sqlite3_open_v2(file_.c_str(), &db_, mode | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
      std::string reason = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      throw Error(file_.string() + ": cannot open the study database (" + reason + ")" +
                  (read_only ? std::string("; check that the study exists and is readable")
                             : std::string("; check that the study folder is writable")));
    }
    // Workers wait for each other's short transactions instead of failing with SQLITE_BUSY,
    // but not forever.
    sqlite3_busy_timeout(db_, 60000);
  }
  ~SqliteConnection() override { sqlite3_close(db_); }

  SqlResult run(const std::string& sql, const std::vector<SqlValue>& args) override {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) fail(sql);
    struct Finalize {
      sqlite3_stmt* s;
      ~Finalize() { sqlite3_finalize(s); }
    } finalize{stmt};
    for (size_t i = 0; i < args.size(); ++i) {
      const int at = static_cast<int>(i + 1);
      int rc = SQLITE_OK;
      if (const auto* v = std::get_if<int64_t>(&args[i])) rc = sqlite3_bind_int64(stmt, at, *v);
      else if (const auto* d = std::get_if<double>(&args[i]))
        rc = std::isfinite(*d) ? sqlite3_bind_double(stmt, at, *d) : sqlite3_bind_null(stmt, at);
      else if (const auto* s = std::get_if<std::string>(&args[i]))
        rc = sqlite3_bind_text(stmt, at, s->c_str(), static_cast<int>(s->size()), SQLITE_TRANSIENT);
      else rc = sqlite3_bind_null(stmt, at);
      if (rc != SQLITE_OK) fail(sql);
    }
    SqlResult result;
    for (;;) {
      const int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) fail(sql);
      SqlRow row;
      for (int c = 0; c < sqlite3_column_count(stmt); ++c) {
        switch (sqlite3_column_type(stmt, c)) {
          case SQLITE_NULL: row.emplace_back(); break;
          case SQLITE_FLOAT: row.emplace_back(double_text(sqlite3_column_double(stmt, c))); break;
          default: row.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(stmt, c)));
        }
      }
      result.rows.push_back(std::move(row));
    }
    result.changed = sqlite3_changes(db_);
    return result;
  }
  void begin_write() override { run("BEGIN IMMEDIATE", {}); }
  void rollback() noexcept override { sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr); }
  std::string now_seconds() const override { return "((julianday('now') - 2440587.5) * 86400.0)"; }
  std::string skip_locked() const override { return ""; }
  void lock_study() override {}
  bool postgres() const override { return false; }

 private:
  [[noreturn]] void fail(const std::string& sql) {
    throw Error(file_.string() + ": study database error (" + sqlite3_errmsg(db_) + ") in: " + sql);
  }
  fs::path file_;
  sqlite3* db_ = nullptr;
};

// "?" -> "$1", "$2"...: the store writes no "?" inside string literals.
std::string number_placeholders(const std::string& sql) {
  std::string out;
  int n = 0;
  for (char c : sql) {
    if (c == '?') out += "$" + std::to_string(++n);
    else out += c;
  }
  return out;
}

class PostgresConnection final : public SqlConnection {
 public:
  PostgresConnection(const StorageUrl& storage, bool read_only) : SqlConnection(storage.url) {
    std::string conninfo = storage.url;
    if (conninfo.find("connect_timeout=") == std::string::npos)
      conninfo += (conninfo.find('?') == std::string::npos ? "?" : "&") + std::string("connect_timeout=10");
    conn_ = PQconnectdb(conninfo.c_str());
    if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
      std::string reason = conn_ ? PQerrorMessage(conn_) : "out of memory";
      while (!reason.empty() && (reason.back() == '\n' || reason.back() == ' ')) reason.pop_back();
      PQfinish(conn_);
      conn_ = nullptr;
      throw Error(url_ + ": cannot connect to the study database (" + reason +
                  "); check that the server runs and accepts this user; a password comes from PGPASSWORD or "
                  "~/.pgpass");
    }
    // "relation already exists, skipping" and the like are not for the user's terminal.
    PQsetNoticeProcessor(conn_, [](void*, const char*) {}, nullptr);
    // Every wait ends: a statement, a lock, an idle transaction of a worker that stalled.
    run("SET statement_timeout = '60s'", {});
    run("SET lock_timeout = '60s'", {});
    run("SET idle_in_transaction_session_timeout = '120s'", {});
    if (read_only) run("SET default_transaction_read_only = on", {});
  }
  ~PostgresConnection() override { PQfinish(conn_); }

  SqlResult run(const std::string& sql, const std::vector<SqlValue>& args) override {
    std::vector<std::string> text(args.size());
    std::vector<const char*> values(args.size(), nullptr);
    for (size_t i = 0; i < args.size(); ++i) {
      if (const auto* v = std::get_if<int64_t>(&args[i])) text[i] = std::to_string(*v);
      else if (const auto* d = std::get_if<double>(&args[i])) {
        if (!std::isfinite(*d)) continue;  // NULL, as SQLite stores NaN
        text[i] = double_text(*d);
      } else if (const auto* s = std::get_if<std::string>(&args[i])) text[i] = *s;
      else continue;
      values[i] = text[i].c_str();
    }
    const std::string numbered = number_placeholders(sql);
    PGresult* res = PQexecParams(conn_, numbered.c_str(), static_cast<int>(args.size()), nullptr, values.data(),
                                 nullptr, nullptr, 0);
    struct Clear {
      PGresult* r;
      ~Clear() { PQclear(r); }
    } clear{res};
    const auto status = PQresultStatus(res);
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
      std::string reason = res ? PQresultErrorMessage(res) : PQerrorMessage(conn_);
      while (!reason.empty() && (reason.back() == '\n' || reason.back() == ' ')) reason.pop_back();
      throw Error(url_ + ": study database error (" + reason + ") in: " + sql);
    }
    SqlResult result;
    for (int r = 0; r < PQntuples(res); ++r) {
      SqlRow row;
      for (int c = 0; c < PQnfields(res); ++c)
        if (PQgetisnull(res, r, c)) row.emplace_back();
        else row.emplace_back(PQgetvalue(res, r, c));
      result.rows.push_back(std::move(row));
    }
    const char* changed = PQcmdTuples(res);
    result.changed = changed && *changed ? std::stoll(changed) : 0;
    return result;
  }
  void begin_write() override { run("BEGIN", {}); }
  void rollback() noexcept override { PQclear(PQexec(conn_, "ROLLBACK")); }
  // clock_timestamp(): the server's clock when the statement runs (NOW() would be the
  // transaction's start).
  std::string now_seconds() const override {
    return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)";
  }
  std::string skip_locked() const override { return " FOR UPDATE SKIP LOCKED"; }
  // One lock per database: a database holds one study. Released at COMMIT or ROLLBACK.
  void lock_study() override { run("SELECT pg_advisory_xact_lock(424242)", {}); }
  bool postgres() const override { return true; }

 private:
  PGconn* conn_ = nullptr;
};

}  // namespace

StorageUrl sqlite_storage(const fs::path& file) {
  StorageUrl out;
  out.kind = StorageUrl::Kind::Sqlite;
  out.file = file;
  out.url = "sqlite:///" + fs::absolute(file).lexically_normal().relative_path().string();
  return out;
}

StorageUrl parse_storage_url(const std::string& text, const fs::path& base, const std::string& where) {
  const std::string sqlite = "sqlite://";
  if (text.rfind(sqlite, 0) == 0) {
    const std::string path = text.substr(sqlite.size());
    if (path.empty() || path == "/")
      throw Error(where + ": [tune] storage \"" + text + "\" names no file; write e.g. \"sqlite:///data/study.db\"");
    // "sqlite:///abs/path" has an absolute path; "sqlite://rel/path" is relative to `base`.
    const fs::path file = path.front() == '/' ? fs::path(path) : base / path;
    StorageUrl out = sqlite_storage(file);
    return out;
  }
  for (const std::string scheme : {"postgresql://", "postgres://"}) {
    if (text.rfind(scheme, 0) != 0) continue;
    const std::string rest = text.substr(scheme.size());
    const std::string authority = rest.substr(0, rest.find_first_of("/?"));
    const auto at = authority.rfind('@');
    const bool password_in_user = at != std::string::npos && authority.substr(0, at).find(':') != std::string::npos;
    if (password_in_user || text.find("password=") != std::string::npos)
      throw Error(where + ": [tune] storage holds a password; a config file is no place for one (it is copied, "
                          "logged and committed): write \"postgresql://user@host:port/db\" and give the password "
                          "in the PGPASSWORD environment variable or in ~/.pgpass");
    const auto slash = rest.find('/');
    if (slash == std::string::npos || slash + 1 >= rest.size() || rest[slash + 1] == '?')
      throw Error(where + ": [tune] storage \"" + text +
                  "\" names no database; write \"postgresql://user@host:port/db\"");
    StorageUrl out;
    out.kind = StorageUrl::Kind::Postgres;
    out.url = text;
    return out;
  }
  throw Error(where + ": [tune] storage must start with \"sqlite://\" or \"postgresql://\" (was \"" + text +
              "\"); e.g. \"sqlite:///data/study.db\" or \"postgresql://bachlab@db.example:5432/study\"");
}

std::unique_ptr<SqlConnection> open_sql_connection(const StorageUrl& storage, bool read_only) {
  if (storage.kind == StorageUrl::Kind::Postgres) return std::make_unique<PostgresConnection>(storage, read_only);
  return std::make_unique<SqliteConnection>(storage, read_only);
}

}  // namespace bachlab::host
