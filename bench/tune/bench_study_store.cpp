// The study store under many workers: W threads (1, 8, 32, 64), each with its own
// connection as a worker process would have, claim trials of one study, "run" each by
// sleeping 50-200 ms (with a heartbeat thread, as real workers do) and record a score.
// Reports claims per second, claim latency p50/p99 and lost or duplicated trials (both
// must be 0) for SQLite and, given a URL, PostgreSQL. The tuner is a trivial one (the
// next id), so the figures are the store's.
//   build/<dir>/bench/bench_study_store [postgresql://user@host:port/db]
// tests/tune/postgres_fixture.sh start DIR starts a throwaway server and writes its URL
// to DIR/url.
#include "host/tune/study_store.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

using namespace bachlab;
using namespace bachlab::host;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

struct Figures {
  double claims_per_s = 0, p50_ms = 0, p99_ms = 0;
  int64_t lost = 0, duplicated = 0;
};

Figures drive(const StorageUrl& storage, int workers, int64_t trials) {
  std::vector<std::atomic<int>> runs(static_cast<size_t>(trials));
  std::vector<double> latencies;
  std::mutex mutex;
  auto ask = [trials](const std::vector<sdk::TrialRecord>& history) {
    sdk::Proposal p;
    p.kind = static_cast<int64_t>(history.size()) < trials ? sdk::Proposal::Kind::Run : sdk::Proposal::Kind::Done;
    p.params["x"] = static_cast<int64_t>(history.size());
    p.epochs = 1;
    return p;
  };
  StoreOptions options;
  options.grace_s = 5;
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w)
    threads.emplace_back([&, w] {
      StudyStore store(storage, options);
      // A SQLite file serves the workers of one machine, so they are this machine's
      // processes (the store can see they are alive); PostgreSQL's stand for workers on
      // other machines, which only their heartbeats speak for.
      const std::string owner = storage.kind == StorageUrl::Kind::Sqlite ? this_process_owner()
                                                                         : fmt::format("bench:{}:{}", w, w);
      std::mt19937 rng(static_cast<unsigned>(w));
      std::uniform_int_distribution<int> sleep_ms(50, 200);
      std::vector<double> mine;
      for (;;) {
        const auto t0 = Clock::now();
        const Claim claim = store.claim(ask, owner);
        mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        if (claim.kind == Claim::Kind::Done) break;
        if (claim.kind == Claim::Kind::Wait) {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
          continue;
        }
        ++runs[static_cast<size_t>(claim.trial.id)];
        {
          TrialHeartbeat beat(storage, claim.trial.id, owner, 1.0);
          std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms(rng)));
        }
        store.complete(claim.trial.id, 1.0, 1.0, 1, 0.1);
      }
      std::lock_guard<std::mutex> lock(mutex);
      latencies.insert(latencies.end(), mine.begin(), mine.end());
    });
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  Figures f;
  StudyStore store(storage);
  for (const auto& t : store.trials())
    if (t.record.state != sdk::TrialRecord::State::Complete) ++f.lost;
  f.lost += trials - static_cast<int64_t>(store.trials().size());
  for (auto& r : runs) f.duplicated += r > 1 ? 1 : 0;
  std::sort(latencies.begin(), latencies.end());
  auto at = [&](double q) { return latencies[static_cast<size_t>(q * static_cast<double>(latencies.size() - 1))]; };
  f.claims_per_s = static_cast<double>(latencies.size()) / seconds;
  f.p50_ms = at(0.5);
  f.p99_ms = at(0.99);
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::pair<std::string, StorageUrl>> backends;
  const fs::path folder = fs::temp_directory_path() / "bachlab_bench_study_store";
  fs::remove_all(folder);
  fs::create_directories(folder);
  backends.emplace_back("sqlite", sqlite_storage(folder / "study.db"));
  if (argc > 1) backends.emplace_back("postgresql", parse_storage_url(argv[1], ".", "bench_study_store"));
  else std::cerr << "no PostgreSQL URL given: SQLite only\n";
  std::cout << "backend     workers  trials  claims/s  claim p50 ms  claim p99 ms  lost  duplicated\n";
  int failures = 0;
  for (auto& [name, storage] : backends) {
    for (int workers : {1, 8, 32, 64}) {
      // A fresh study each time.
      if (storage.kind == StorageUrl::Kind::Sqlite) {
        for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(storage.file.string() + suffix);
      } else {
        auto db = open_sql_connection(storage);
        db->run("DROP TABLE IF EXISTS trials");
        db->run("DROP TABLE IF EXISTS study");
      }
      const int64_t trials = std::max<int64_t>(20, 4 * workers);
      const Figures f = drive(storage, workers, trials);
      std::cout << fmt::format("{:<10}  {:>7}  {:>6}  {:>8.1f}  {:>12.2f}  {:>12.2f}  {:>4}  {:>10}\n", name,
                               workers, trials, f.claims_per_s, f.p50_ms, f.p99_ms, f.lost, f.duplicated)
                << std::flush;
      failures += f.lost + f.duplicated > 0;
    }
  }
  fs::remove_all(folder);
  return failures == 0 ? 0 : 1;
}
