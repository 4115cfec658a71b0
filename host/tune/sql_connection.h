#pragma once
// One connection to a study database, SQLite or PostgreSQL, behind one small interface so
// that the study store (study_store.cpp) is written once, with one set of semantics.
// Statements are written with `?` placeholders; the PostgreSQL backend numbers them.
// A connection is used by one thread at a time (the heartbeat thread opens its own).

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace bachlab::host {

/// Where a study's trials are stored: `[tune] storage`.
struct StorageUrl {
  enum class Kind { Sqlite, Postgres };
  Kind kind = Kind::Sqlite;
  /// The URL as written (never holds a password: those are refused), for messages.
  std::string url;
  /// The SQLite file (Kind::Sqlite).
  std::filesystem::path file;
};

/// The SQLite file `file` as a storage URL, "sqlite:///<absolute file>".
StorageUrl sqlite_storage(const std::filesystem::path& file);

/// Parses "sqlite:///path/study.db" (relative paths: "sqlite:///" + an absolute path, or
/// "sqlite://relative/path" against `base`) or "postgresql://user@host:port/db[?options]".
/// Throws Error naming `where` for any other scheme, and for a URL that holds a password:
/// passwords come from PGPASSWORD or ~/.pgpass only, never from a config file or a log.
StorageUrl parse_storage_url(const std::string& text, const std::filesystem::path& base, const std::string& where);

using SqlValue = std::variant<std::nullptr_t, int64_t, double, std::string>;
/// One row, as text (NULL: nullopt). Doubles come back in shortest round-trip form.
using SqlRow = std::vector<std::optional<std::string>>;

struct SqlResult {
  std::vector<SqlRow> rows;
  /// Rows changed by an INSERT, UPDATE or DELETE.
  int64_t changed = 0;
};

class SqlConnection {
 public:
  virtual ~SqlConnection() = default;
  /// Runs one statement with `?` placeholders bound to `args`. Throws Error naming the
  /// storage URL and the database's message.
  virtual SqlResult run(const std::string& sql, const std::vector<SqlValue>& args = {}) = 0;
  /// Starts a transaction that will write: SQLite takes the write lock at once (BEGIN
  /// IMMEDIATE), so what it reads cannot change before it writes; PostgreSQL begins a
  /// read-committed transaction and the store locks rows explicitly.
  virtual void begin_write() = 0;
  void commit() { run("COMMIT"); }
  /// Rolls back, ignoring errors (used on the way out of a failed transaction).
  virtual void rollback() noexcept = 0;
  /// An SQL expression for the database's clock, in seconds since 1970 (fractional).
  virtual std::string now_seconds() const = 0;
  /// Appended to a SELECT that picks one row to claim: " FOR UPDATE SKIP LOCKED" on
  /// PostgreSQL; nothing on SQLite, where the write transaction already excludes others.
  virtual std::string skip_locked() const = 0;
  /// Serialises the writers of one study inside a write transaction (PostgreSQL: an
  /// advisory transaction lock; SQLite: nothing, BEGIN IMMEDIATE did it).
  virtual void lock_study() = 0;
  /// True for PostgreSQL.
  virtual bool postgres() const = 0;
  /// The storage URL, for messages.
  const std::string& url() const { return url_; }

 protected:
  explicit SqlConnection(std::string url) : url_(std::move(url)) {}
  std::string url_;
};

/// Opens a connection. Waits are bounded: SQLite waits up to 60 s for a lock; PostgreSQL
/// connects within 10 s (connect_timeout, unless the URL sets it) and every statement and
/// lock wait ends after 60 s. `read_only`: nothing is created or written (a SQLite file
/// must exist; a PostgreSQL session refuses writes). Throws Error naming the storage URL.
std::unique_ptr<SqlConnection> open_sql_connection(const StorageUrl& storage, bool read_only = false);

}  // namespace bachlab::host
