// Studies shared by worker processes through the store, on SQLite and on a throwaway
// PostgreSQL server (ctest fixture tune_postgres, tests/tune/postgres_fixture.sh). Three
// workers run a study; one is killed with SIGKILL in the middle of a trial. Its trial must
// come back to waiting once its heartbeat is older than the grace period and be run by
// another worker: no trial lost, none run by two live workers at once, and the best trial
// the same as a single worker's with the same seed.
#include "host/tune/study_report.h"
#include "host/tune/sql_connection.h"
#include "host/tune/study.h"
#include "host/tune/study_store.h"
#include "tests/tune/tuner_harness.h"

#include <bachlab/sdk/error.h>

#include <gtest/gtest.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

extern char** environ;

namespace bachlab::host {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kTrials = 8;
constexpr int kTrialMs = 700;
// Grace well above the beat: on a loaded 2-core machine a live worker's beat can be late by
// a second, and a live trial must never be taken.
constexpr double kHeartbeat = 0.2, kGrace = 2.5;

struct Event {
  std::string kind;
  int64_t trial;
  long pid;
  double time;
};

std::vector<Event> read_log(const fs::path& file) {
  std::vector<Event> out;
  std::ifstream in(file);
  for (Event e; in >> e.kind >> e.trial >> e.pid >> e.time;) out.push_back(e);
  return out;
}

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

class DistributedStudyTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    folder_ = fs::temp_directory_path() / ("bachlab_distributed_" + GetParam());
    fs::remove_all(folder_);
    fs::create_directories(folder_);
    if (GetParam() == "sqlite") {
      url_ = "sqlite://" + (folder_ / "study.db").string();
      return;
    }
    const fs::path dir = BACHLAB_TEST_POSTGRES_DIR;
    if (fs::exists(dir / "skip_reason")) {
      std::ifstream in(dir / "skip_reason");
      std::string reason((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      GTEST_SKIP() << "PostgreSQL could not be started: " << reason;
    }
    std::ifstream in(dir / "url");
    ASSERT_TRUE(in >> url_) << "no " << (dir / "url") << ": run through ctest (fixture tune_postgres)";
    // A fresh study in the fixture's database.
    auto db = open_sql_connection(parse_storage_url(url_, ".", "test"));
    db->run("DROP TABLE IF EXISTS trials");
    db->run("DROP TABLE IF EXISTS study");
  }
  void TearDown() override { fs::remove_all(folder_); }

  pid_t start_worker(const fs::path& log) {
    std::vector<std::string> args = {BACHLAB_BINARY_DIR "/tests/tune_store_worker", url_, log.string(),
                                     std::to_string(kTrials), std::to_string(kTrialMs), std::to_string(kHeartbeat),
                                     std::to_string(kGrace)};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    EXPECT_EQ(posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ), 0);
    return pid;
  }

  fs::path folder_;
  std::string url_;
};

TEST_P(DistributedStudyTest, AKilledWorkersTrialIsRequeuedAfterTheGracePeriodAndNothingIsLost) {
  const fs::path log = folder_ / "events.log";
  { StudyStore create(parse_storage_url(url_, ".", "test")); }
  std::vector<pid_t> workers;
  for (int w = 0; w < 3; ++w) workers.push_back(start_worker(log));

  // Kill the first worker once it is in the middle of a trial.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  int64_t killed_trial = -1;
  double killed_at = 0;
  while (killed_trial < 0 && std::chrono::steady_clock::now() < deadline) {
    for (const auto& e : read_log(log))
      if (e.kind == "start" && e.pid == workers[0]) killed_trial = e.trial;
    if (killed_trial < 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GE(killed_trial, 0) << "worker 1 never started a trial";
  std::this_thread::sleep_for(std::chrono::milliseconds(kTrialMs / 3));
  kill(workers[0], SIGKILL);
  killed_at = unix_seconds();
  for (pid_t pid : workers) {
    int status = 0;
    waitpid(pid, &status, 0);
    if (pid != workers[0]) EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a live worker failed";
  }

  StudyStore store(parse_storage_url(url_, ".", "test"));
  const auto trials = store.trials();
  ASSERT_EQ(trials.size(), static_cast<size_t>(kTrials));
  for (const auto& t : trials) {
    EXPECT_EQ(t.record.state, sdk::TrialRecord::State::Complete) << "trial " << t.record.id << " lost";
    EXPECT_EQ(t.attempts, t.record.id == killed_trial ? 2 : 1) << "trial " << t.record.id;
  }

  // The killed trial started again only after its heartbeat went stale: at least the
  // grace period minus one heartbeat after the kill (the last beat may precede it).
  const auto events = read_log(log);
  std::map<int64_t, std::vector<Event>> by_trial;
  for (const auto& e : events) by_trial[e.trial].push_back(e);
  double restarted = 0;
  for (const auto& e : by_trial[killed_trial])
    if (e.kind == "start" && e.pid != workers[0]) restarted = e.time;
  ASSERT_GT(restarted, 0) << "trial " << killed_trial << " was never run again";
  EXPECT_GE(restarted - killed_at, kGrace - kHeartbeat - 0.05);
  EXPECT_LT(restarted - killed_at, kGrace + 5.0);

  // Every trial ran to its end exactly once, and no two live workers overlapped on one.
  for (const auto& [id, list] : by_trial) {
    int ends = 0;
    std::vector<std::pair<double, double>> spans;
    std::map<long, double> open;
    for (const auto& e : list) {
      if (e.pid == workers[0]) continue;
      if (e.kind == "start") open[e.pid] = e.time;
      else {
        ++ends;
        spans.emplace_back(open[e.pid], e.time);
      }
    }
    EXPECT_EQ(ends, 1) << "trial " << id;
    for (size_t i = 0; i < spans.size(); ++i)
      for (size_t j = 0; j < i; ++j)
        EXPECT_TRUE(spans[i].second <= spans[j].first || spans[j].second <= spans[i].first) << "trial " << id;
  }

  // The same study with one worker in this process, no kill: the same best trial.
  StudyStore reference(folder_ / "reference.db");
  sdk::SearchSpace space;
  space.dimensions = {testing::float_dimension("f.x1", -5, 10), testing::float_dimension("f.x2", 0, 15)};
  TuneSettings settings;
  settings.objective = "val_loss";
  settings.maximize = false;
  settings.max_trials = kTrials;
  settings.seed = 5;
  auto tuner = testing::make_tuner("random", space, kTrials, 5);
  WorkerOptions quiet;
  quiet.owner = "reference";
  run_worker(reference, *tuner, settings, folder_ / "reference", [](const TrialRequest& r) {
    TrialResult result;
    result.objective = testing::branin(testing::as_number(r.trial.params.at("f.x1")),
                                       testing::as_number(r.trial.params.at("f.x2")));
    return result;
  }, quiet);
  auto best = [](const std::vector<StoredTrial>& list) {
    const StoredTrial* b = nullptr;
    for (const auto& t : list)
      if (!b || t.record.score > b->record.score) b = &t;
    return *b;
  };
  const StoredTrial mine = best(trials), theirs = best(reference.trials());
  EXPECT_EQ(mine.record.id, theirs.record.id);
  EXPECT_EQ(mine.objective, theirs.objective);
  EXPECT_EQ(mine.record.params, theirs.record.params);
}

TEST_P(DistributedStudyTest, ALateHeartbeatOfALiveWorkerOnThisMachineKeepsItsTrial) {
  StoreOptions options;
  options.grace_s = 0.3;
  StudyStore store(parse_storage_url(url_, ".", "test"), options);
  auto ask = [](const std::vector<sdk::TrialRecord>&) {
    sdk::Proposal p;
    p.kind = sdk::Proposal::Kind::Run;
    p.params["f.x1"] = 1.5;
    return p;
  };
  const Claim mine = store.claim(ask, this_process_owner());
  ASSERT_EQ(mine.kind, Claim::Kind::Run);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  // Past the grace period, but this process is alive: a held-up heartbeat, not a dead worker.
  EXPECT_TRUE(store.requeue_stale(0.3).empty());
  EXPECT_TRUE(store.heartbeat(mine.trial.id, this_process_owner())) << "the trial was taken from its live owner";
  // `tune --status` reads a study by its storage URL too (PostgreSQL has no study folder).
  const std::string status = format_status(fs::path(url_));
  EXPECT_NE(status.find("study " + url_ + "\n"), std::string::npos) << status;
  EXPECT_NE(status.find("0 failed, 1 running\n"), std::string::npos) << status;
}

TEST_P(DistributedStudyTest, AResultIsWrittenOnceAndAStaleTrialKeepsItsIdAndValues) {
  StoreOptions options;
  options.grace_s = 0.3;
  StudyStore store(parse_storage_url(url_, ".", "test"), options);
  sdk::Proposal proposal;
  proposal.kind = sdk::Proposal::Kind::Run;
  proposal.params["f.x1"] = 1.5;
  proposal.epochs = 3;
  auto ask = [&](const std::vector<sdk::TrialRecord>& history) {
    sdk::Proposal p = proposal;
    if (history.size() >= 2) p.kind = sdk::Proposal::Kind::Done;
    return p;
  };
  const Claim first = store.claim(ask, "a:1:1");
  ASSERT_EQ(first.kind, Claim::Kind::Run);
  EXPECT_TRUE(store.heartbeat(first.trial.id, "a:1:1"));
  EXPECT_FALSE(store.heartbeat(first.trial.id, "b:2:2")) << "only the owner beats";
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  // a:1:1 stalled: its trial goes back to waiting and b gets it, same id and values.
  const Claim again = store.claim(ask, "b:2:2");
  ASSERT_EQ(again.kind, Claim::Kind::Run);
  EXPECT_TRUE(again.retry);
  EXPECT_EQ(again.trial.id, first.trial.id);
  EXPECT_EQ(again.trial.params, first.trial.params);
  EXPECT_FALSE(store.heartbeat(first.trial.id, "a:1:1")) << "a lost the trial";
  store.complete(again.trial.id, 2.0, 2.0, 3, 1.0);
  store.complete(first.trial.id, 9.0, 9.0, 3, 1.0);  // a comes back late: ignored
  store.fail(first.trial.id, "late", 0, 0);
  const auto trials = store.trials();
  ASSERT_EQ(trials.size(), 1u);
  EXPECT_EQ(trials[0].record.state, sdk::TrialRecord::State::Complete);
  EXPECT_EQ(trials[0].objective, 2.0);
  EXPECT_EQ(trials[0].attempts, 2);
  EXPECT_EQ(trials[0].host, this_host());
}

INSTANTIATE_TEST_SUITE_P(Backends, DistributedStudyTest, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

TEST(StorageUrlTest, APasswordInTheUrlIsRefusedAndBadUrlsAreNamed) {
  try {
    parse_storage_url("postgresql://me:secret@db:5432/study", ".", "study.toml");
    FAIL() << "a password was accepted";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find("secret"), std::string::npos) << "the message repeats the password";
    EXPECT_NE(message.find("PGPASSWORD"), std::string::npos);
    EXPECT_EQ(message.rfind("study.toml: [tune] storage holds a password", 0), 0u) << message;
  }
  EXPECT_THROW(parse_storage_url("postgresql://me@db/study?password=x", ".", "s.toml"), Error);
  EXPECT_THROW(parse_storage_url("mysql://me@db/study", ".", "s.toml"), Error);
  EXPECT_THROW(parse_storage_url("postgresql://me@db:5432", ".", "s.toml"), Error);
  const StorageUrl pg = parse_storage_url("postgresql://me@db:5432/study", ".", "s.toml");
  EXPECT_EQ(pg.kind, StorageUrl::Kind::Postgres);
  const StorageUrl lite = parse_storage_url("sqlite:///data/s.db", "/base", "s.toml");
  EXPECT_EQ(lite.file, fs::path("/data/s.db"));
  EXPECT_EQ(parse_storage_url("sqlite://rel/s.db", "/base", "s.toml").file, fs::path("/base/rel/s.db"));
}

// Issue #22 LOW: a status query never writes (an empty file stays empty and is called what
// it is, not a study of "tuner ?"), and a storage that is not a regular file is refused
// before SQLite puts its journal beside it.
TEST(StorageUrlTest, StatusNeverWritesAndAStudyDatabaseIsAFile) {
  const fs::path dir = fs::temp_directory_path() / ("bachlab_status_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "study.db").close();
  try {
    format_status(dir);
    ADD_FAILURE() << "an empty file was taken for a study";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("study.db: not a bachlab study database ("), std::string::npos) << e.what();
  }
  EXPECT_EQ(fs::file_size(dir / "study.db"), 0u);
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir)) files.push_back(entry.path().filename().string());
  EXPECT_EQ(files, std::vector<std::string>{"study.db"}) << "status left a journal or a WAL file";
  fs::remove_all(dir);

  const std::vector<std::string> not_files = {"sqlite:///dev/null", "sqlite://" + fs::temp_directory_path().string()};
  for (const std::string& url : not_files) {
    try {
      StudyStore store(parse_storage_url(url, ".", "s.toml"));
      ADD_FAILURE() << url << " was opened as a study database";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(": not a regular file; a study database is a file of its own"),
                std::string::npos)
          << e.what();
    }
  }
}

TEST(StorageUrlTest, AnUnreachableServerFailsWithinTheConnectTimeoutNamingTheUrl) {
  // Port 1 on localhost refuses at once; the message names the URL and the way out.
  try {
    StudyStore store(parse_storage_url("postgresql://nobody@127.0.0.1:1/study?connect_timeout=2", ".", "t"));
    FAIL() << "connected to nothing";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind("postgresql://nobody@127.0.0.1:1/study?connect_timeout=2: cannot connect", 0), 0u)
        << message;
  }
}

}  // namespace
}  // namespace bachlab::host
