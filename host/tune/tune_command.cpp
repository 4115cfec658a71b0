// `bachlab tune CONFIG [--workers N] [--resume]` and `bachlab tune --status DIR`.
//
// With --workers N > 1 this process is only the coordinator: it starts N copies of the
// same executable in worker mode (`bachlab tune CONFIG --worker ...`), each with its share
// of the cores, and waits for them. The workers share nothing but the study database, so
// a kill of any of them (or of everything) loses no finished trial, and `--resume` goes on.
#include "host/cli/commands.h"
#include "host/config/config.h"
#include "host/util/time_text.h"
#include "host/plugins/registry.h"
#include "host/report/run_report.h"
#include "host/tune/study.h"
#include "host/tune/study_report.h"
#include "host/tune/study_store.h"
#include "host/tune/trial_training.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <torch/torch.h>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
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
  bool worker = false;
  int threads = 0;
  bool quiet = false;
};

std::string utc_now() { return now_text("%Y-%m-%d %H:%M:%S", TimeZone::utc); }

fs::path executable() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw Error("cannot find this program's own file (/proc/self/exe: " + ec.message() + ") to start workers");
  return self;
}

// Opens the study database, creating and describing the study the first time; a study
// that exists is only continued with --resume, and only under the config it started with.
void prepare_store(StudyStore& store, const StudyConfig& study, const std::string& fingerprint, bool resume,
                   const fs::path& folder) {
  auto existing = store.get("fingerprint");
  if (!existing) {
    store.set("fingerprint", fingerprint);
    store.set("config", fs::absolute(study.file).lexically_normal().string());
    store.set("tuner", study.settings.tuner);
    store.set("objective", study.settings.objective);
    store.set("direction", study.settings.maximize ? "max" : "min");
    store.set("max_trials", std::to_string(study.settings.max_trials));
    store.set("created", utc_now());
    return;
  }
  const auto trials = store.trials();
  if (!resume)
    throw Error(fmt::format("{}: a study is already there ({} trials); continue it with `bachlab tune {} --resume`, "
                            "or set another [tune] folder (or --folder) for a new study",
                            folder.string(), trials.size(), study.file.string()));
  if (*existing != fingerprint)
    throw Error(fmt::format("{}: the config changed since the study in {} started (it was {}); a study resumes only "
                            "under the config it started with: restore the config, or start a new study with "
                            "another [tune] folder",
                            study.file.string(), folder.string(), store.get("config").value_or("?")));
}

int run_workers(const TuneArgs& args, const fs::path& folder, int workers) {
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const int threads = std::max(1, static_cast<int>(cores) / workers);
  const std::string self = executable().string();
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
  if (!args.folder.empty()) study.settings.folder = args.folder;
  const fs::path folder = study.settings.folder;
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec)
    throw Error(folder.string() + ": cannot create the study folder (" + ec.message() +
                "); set [tune] folder to a writable place");
  Config config = Config::load(args.config, args.overrides);
  StudyStore store(folder / "study.db");
  std::ostream* log = args.quiet ? nullptr : &std::cerr;

  TrainingTrialOptions training;
  training.progress = log;
  auto write_outputs = [&] { write_study_outputs(folder, store.trials(), study.space, study.settings); };

  if (args.worker) {
    training.threads = args.threads;
    if (args.threads > 0) torch::set_num_threads(args.threads);
    auto tuner = registry.create_tuner(study.settings.tuner, study.space, study_settings(study.settings),
                                       study.tuner_params);
    WorkerOptions options;
    options.log = log;
    options.after_trial = write_outputs;
    run_worker(store, *tuner, study.settings, folder, training_trial_function(study, training), options);
    return 0;
  }

  prepare_store(store, study, study_fingerprint(config), args.resume, folder);
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
    auto tuner = registry.create_tuner(study.settings.tuner, study.space, study_settings(study.settings),
                                       study.tuner_params);
    WorkerOptions options;
    options.log = log;
    options.after_trial = write_outputs;
    try {
      run_worker(store, *tuner, study.settings, folder, training_trial_function(study, training), options);
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
  std::cout << format_status(folder);
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
  command->add_option("--status", args.status, "Print the progress of the study in this folder and exit");
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
