// `bachlab tune CONFIG [--workers N] [--resume | --join]` and `bachlab tune --status DIR`.
//
// With --workers N > 1 this process is only the coordinator: it starts N copies of the
// same executable in worker mode (`bachlab tune CONFIG --worker ...`), each with its share
// of the cores, and waits for them. The workers share nothing but the study database, so
// a kill of any of them (or of everything) loses no finished trial, and `--resume` goes on.
// With [tune] storage on PostgreSQL, `--join` adds workers on any machine to a study that
// runs: each running trial's heartbeat tells the others whether its worker still lives.
#include "host/cli/commands.h"
#include "host/config/config.h"
#include "host/util/process.h"
#include "host/util/time_text.h"
#include "host/plugins/registry.h"
#include "host/report/compare.h"
#include "host/report/run_report.h"
#include "host/tune/heartbeat_trial.h"
#include "host/tune/study.h"
#include "host/tune/study_open.h"
#include "host/tune/study_report.h"
#include "host/tune/study_store.h"
#include "host/tune/best_trials.h"
#include "host/tune/trial_training.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <torch/torch.h>

#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>
#include <thread>

extern char** environ;

namespace bachlab::cli {

namespace fs = std::filesystem;
using namespace bachlab::host;

namespace {

struct TuneArgs {
  /// The study config, then KEY=VALUE overrides (split from `arguments` before tune()).
  std::vector<std::string> arguments;
  std::string config;
  std::vector<std::string> overrides;
  std::string status;
  std::string folder;
  int workers = 1;
  bool resume = false;
  bool join = false;
  bool worker = false;
  int threads = 0;
  bool quiet = false;
};

std::string utc_now() { return now_text("%Y-%m-%d %H:%M:%S", TimeZone::utc); }

int run_workers(const TuneArgs& args, const fs::path& folder, int workers) {
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const int threads = std::max(1, static_cast<int>(cores) / workers);
  const std::string self = host::program_file().string();
  // Tells each worker whose it is, so one started after its coordinator already died stops.
  setenv("BACHLAB_TUNE_COORDINATOR", std::to_string(getpid()).c_str(), 1);
  std::vector<pid_t> children;
  for (int w = 0; w < workers; ++w) {
    std::vector<std::string> argv_text = {self,       "tune",    args.config,          "--worker",
                                          "--folder", folder.string(), "--threads", std::to_string(threads)};
    if (args.quiet) argv_text.push_back("--quiet");
    // Right after the config, as the user gave them: each worker reads the same study.
    argv_text.insert(argv_text.begin() + 3, args.overrides.begin(), args.overrides.end());
    std::vector<char*> argv;
    for (auto& a : argv_text) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv.data(), environ);
    if (rc != 0) throw Error("cannot start worker " + std::to_string(w + 1) + " (" + std::strerror(rc) + ")");
    children.push_back(pid);
  }
  std::cerr << fmt::format("started {} workers with {} {} each\n", workers, threads, threads == 1 ? "thread" : "threads");
  int failed = 0;
  for (pid_t pid : children) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
  }
  return failed;
}

int tune(const TuneArgs& args) {
  if (!args.status.empty()) {
    std::cout << format_status(args.status);
    return 0;
  }
  if (args.config.empty()) throw UsageError("bachlab tune: give a study config (bachlab tune CONFIG) or --status DIR");
  PluginRegistry registry;
  Config study_file = Config::load(args.config, args.overrides);
  StudyConfig study = load_study_config(study_file, registry);
  study.overrides = args.overrides;
  if (!args.folder.empty()) {
    if (study.settings.artifacts == study.settings.folder) study.settings.artifacts = args.folder;
    study.settings.folder = args.folder;
  }
  const fs::path folder = study.settings.folder;
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec)
    throw Error(folder.string() + ": cannot create the study folder (" + ec.message() +
                "); set [tune] folder to a writable place");
  Config config = Config::load(args.config, args.overrides);
  const StorageUrl storage =
      study.settings.storage.empty()
          ? sqlite_storage(folder / "study.db")
          : parse_storage_url(study.settings.storage, fs::absolute(study.file).parent_path(), study.file.string());
  StoreOptions store_options;
  store_options.grace_s = study.settings.grace_s;
  StudyStore store(storage, store_options);
  const fs::path artifacts = study.settings.artifacts;
  std::ostream* log = args.quiet ? nullptr : &std::cerr;

  TrainingTrialOptions training;
  training.progress = log;
  auto write_outputs = [&] { write_study_outputs(folder, store.trials(), study.space, study.settings); };
  // This process as a worker of the study: ask the tuner, train, tell, until it is done.
  auto work = [&] {
    auto tuner = registry.create_tuner(study.settings.tuner, study.space, study_settings(study.settings),
                                       study.tuner_params);
    WorkerOptions options;
    options.log = log;
    options.after_trial = write_outputs;
    options.owner = this_process_owner();
    run_worker(store, *tuner, study.settings, artifacts,
               with_heartbeat(training_trial_function(study, training), storage, options.owner,
                              study.settings.heartbeat_s),
               options);
  };

  if (args.worker) {
    // A worker lives only as long as its coordinator: when that is killed (or stopped
    // with Ctrl-C) the kernel sends the worker SIGTERM, and it stops as a killed worker
    // does; its trial stays "running" and is handed out again by `--resume`.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (const char* coordinator = std::getenv("BACHLAB_TUNE_COORDINATOR");
        coordinator && std::to_string(getppid()) != coordinator)
      throw Error("bachlab tune --worker: the coordinator that started this worker is gone; continue the study with "
                  "`bachlab tune " + args.config + " --resume`");
    training.threads = args.threads;
    if (args.threads > 0) torch::set_num_threads(args.threads);
    work();
    return 0;
  }

  open_study(store, study, config.resolved_toml(),
             args.join ? StudyOpening::join : args.resume ? StudyOpening::resume : StudyOpening::start, folder,
             &std::cerr);
  const auto released = store.release_orphans();
  for (int64_t id : released) std::cerr << fmt::format("trial {} was running when its worker stopped: it runs again\n", id);

  if (args.workers > 1) {
    const int failed = run_workers(args, folder, args.workers);
    write_outputs();
    if (failed > 0) {
      const int64_t failures = store.consecutive_failures();
      if (failures >= study.settings.max_consecutive_failures) {
        std::string last;
        for (const auto& t : store.trials())
          if (t.record.state == sdk::TrialRecord::State::Failed) last = fmt::format("trial {}: {}", t.record.id, t.message);
        throw Error(too_many_failures_message(folder, failures, last));
      }
      throw Error(fmt::format("{}: {} of {} workers stopped with an error (see above); finished trials are kept, "
                              "continue with `bachlab tune {} --resume`",
                              folder.string(), failed, args.workers, args.config));
    }
  } else {
    try {
      work();
    } catch (const Error&) {
      write_outputs();
      throw;
    }
  }

  // Every trial has been handed out; trials still running belong to workers of another
  // coordinator (another machine): the tables and the retraining wait for them.
  const auto trials = store.trials();
  write_outputs();
  const bool all_finished = std::none_of(trials.begin(), trials.end(), [](const StoredTrial& t) {
    return t.record.state == sdk::TrialRecord::State::Running;
  });
  if (!all_finished) {
    std::cerr << "other workers are still running trials; run `bachlab tune " << args.config
              << " --resume` once they are done to retrain the best trials\n";
    return 0;
  }
  if (args.join) {
    // The machine that started the study writes best_trial.toml and retrains the best.
    std::cerr << "every trial is finished; `bachlab tune " << args.config
              << " --resume` on the machine that started the study retrains the best trials\n";
    return 0;
  }
  if (!store.get("finished")) store.set("finished", utc_now());
  if (write_best_trial_config(study, trials, folder))
    std::cerr << "wrote " << (folder / "best_trial.toml").string() << "\n";
  if (study.settings.top_k > 0) {
    auto runs = retrain_top_trials(study, trials, training);
    if (!runs.empty()) {
      std::cout << (runs.size() == 1 ? fmt::format("The best trial, retrained with seed {} and tested:\n",
                                                   study.settings.seed)
                                     : fmt::format("The {} best trials, retrained with seed {} and tested:\n",
                                                   runs.size(), study.settings.seed))
                << format_comparison_table(runs) << "\n"
                << (runs.size() == 1 ? "Its tuned settings:\n" : "Their tuned settings:\n")
                << format_trial_settings(top_trials(trials, study.settings.top_k), study.space, study.settings)
                << "\n";
    }
  }
  std::cout << format_status(store, storage.kind == StorageUrl::Kind::Postgres ? storage.url : folder.string())
            << "page: " << study_page(folder).string() << "\n";
  return 0;
}

}  // namespace

void add_tune_commands(CLI::App& app) {
  static TuneArgs args;
  auto* command = app.add_subcommand(
      "tune", "Search hyper-parameters: run a study's trials, resumable, optionally with several worker processes");
  command->add_option("config", args.arguments,
                      "Study config (an experiment with [tune] and [tune.space.*] tables), then KEY=VALUE overrides");
  command->add_option("--workers", args.workers, "Worker processes sharing the study (each gets cores / N threads)")
      ->check(CLI::Range(1, 256));
  command->add_flag("--resume", args.resume, "Continue the study in the config's [tune] folder");
  command->add_flag("--join", args.join,
                    "Add workers (on this machine) to a study that exists in the config's [tune] storage; refused "
                    "if this config differs from the study's");
  command->add_option("--status", args.status, "Print the progress of the study in this folder (or at this storage URL, e.g. "
                                       "postgresql://user@host/db) and exit");
  command->add_option("--folder", args.folder, "Study folder (default: [tune] folder of the config)");
  command->add_flag("--quiet", args.quiet, "Only errors and the final summary");
  // Internal: how the coordinator starts its workers.
  command->add_flag("--worker", args.worker)->group("");
  command->add_option("--threads", args.threads)->group("");
  on_run(command, [] {
    const ConfigArguments given = split_config_arguments(args.arguments);
    if (given.files.size() > 1)
      throw UsageError(fmt::format("bachlab tune takes one study config (got {})", given.files.size()));
    args.config = given.files.empty() ? std::string() : given.files.front();
    args.overrides = given.overrides;
    return tune(args);
  });
}

}  // namespace bachlab::cli
