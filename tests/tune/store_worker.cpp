// A worker process for the distributed-study tests and the store bench: claims trials of
// a random-search study in STORAGE and runs each as a known function that sleeps, with a
// heartbeat, logging "start|end <trial> <pid> <unix seconds>" lines to LOG.
//   tune_store_worker STORAGE LOG TRIALS TRIAL_MS HEARTBEAT_S GRACE_S
#include "host/tune/heartbeat_trial.h"
#include "host/tune/study.h"
#include "host/tune/study_store.h"
#include "tests/tune/tuner_harness.h"

#include <fmt/format.h>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <thread>

using namespace bachlab;
using namespace bachlab::host;
namespace fs = std::filesystem;

namespace {

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// One write per line with O_APPEND: lines of several processes never interleave.
void log_line(const std::string& file, const std::string& line) {
  const int fd = open(file.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
  if (fd < 0) return;
  (void)!write(fd, line.data(), line.size());
  close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 7) {
    std::cerr << "usage: tune_store_worker STORAGE LOG TRIALS TRIAL_MS HEARTBEAT_S GRACE_S\n";
    return 2;
  }
  try {
    const StorageUrl storage = parse_storage_url(argv[1], ".", "tune_store_worker");
    const std::string log = argv[2];
    const int64_t trials = std::stoll(argv[3]);
    const int trial_ms = std::stoi(argv[4]);
    const double heartbeat_s = std::stod(argv[5]);
    StoreOptions options;
    options.grace_s = std::stod(argv[6]);
    StudyStore store(storage, options);
    sdk::SearchSpace space;
    space.dimensions = {testing::float_dimension("f.x1", -5, 10), testing::float_dimension("f.x2", 0, 15)};
    TuneSettings settings;
    settings.objective = "val_loss";
    settings.maximize = false;
    settings.max_trials = trials;
    settings.seed = 5;
    auto tuner = testing::make_tuner("random", space, trials, settings.seed);
    WorkerOptions worker;
    worker.owner = this_process_owner();
    worker.wait = std::chrono::milliseconds(50);
    const std::string pid = std::to_string(getpid());
    TrialFunction run = [&](const TrialRequest& r) {
      log_line(log, fmt::format("start {} {} {:.3f}\n", r.trial.id, pid, unix_seconds()));
      std::this_thread::sleep_for(std::chrono::milliseconds(trial_ms));
      TrialResult result;
      result.objective = testing::branin(testing::as_number(r.trial.params.at("f.x1")),
                                         testing::as_number(r.trial.params.at("f.x2")));
      result.epochs_used = 1;
      log_line(log, fmt::format("end {} {} {:.3f}\n", r.trial.id, pid, unix_seconds()));
      return result;
    };
    const fs::path folder = fs::temp_directory_path() / ("tune_store_worker_" + pid);
    run_worker(store, *tuner, settings, folder, with_heartbeat(run, storage, worker.owner, heartbeat_s), worker);
    fs::remove_all(folder);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "tune_store_worker: " << e.what() << "\n";
    return 1;
  }
}
