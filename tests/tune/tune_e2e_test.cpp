// The quick tuning study of configs/tune/ trained for real on tiny synthetic photos: every
// trial trains and is scored on validation, the tables and plots are written, the best
// trial comes out as a config that plans as a normal experiment, the best trial is
// retrained and tested; and the same study through `bachlab tune --workers 2`.
#include "host/config/config.h"
#include "host/plugins/registry.h"
#include "host/train/experiment.h"
#include "host/tune/study.h"
#include "host/tune/study_report.h"
#include "host/tune/best_trials.h"
#include "host/tune/trial_training.h"
#include "host/report/run_report.h"
#include "host/util/atomic_file.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <set>
#include <thread>
#include <tuple>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace bachlab::host {
namespace {

namespace fs = std::filesystem;

const fs::path kQuickConfig = fs::path(BACHLAB_SOURCE_DIR) / "configs" / "tune" / "model4a_quick.toml";

class TuneEndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    folder_ = fs::temp_directory_path() /
              ("bachlab_tune_e2e_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(folder_);
    fs::create_directories(folder_);
    // The quick configs keep the default cache folder; each test gets its own, so tests
    // running at once never share a synthetic set or a prepared cache (the programs this
    // test starts inherit it).
    setenv("XDG_CACHE_HOME", (folder_ / "cache").c_str(), 1);
    registry_.scan({BACHLAB_TEST_PLUGIN_DIR});
  }
  void TearDown() override { fs::remove_all(folder_); }

  // One worker trains every trial of `study` in this process, two threads.
  WorkerSummary train_study(StudyConfig& study, StudyStore& store) {
    auto tuner = registry_.create_tuner(study.settings.tuner, study.space, study_settings(study.settings),
                                        study.tuner_params);
    return run_worker(store, *tuner, study.settings, folder_, training_trial_function(study, options_));
  }

  TrainingTrialOptions options_ = [] {
    TrainingTrialOptions options;
    options.threads = 2;
    options.plugin_paths = {BACHLAB_TEST_PLUGIN_DIR};
    return options;
  }();

  // A study of the quick config on a few 32x24 synthetic photos, one trial of one epoch,
  // with `tune` (more [tune] lines).
  StudyConfig tiny_study(const std::string& tune) {
    const fs::path file = folder_ / "study.toml";
    std::ofstream(file) << "extends = \"" << kQuickConfig.string() << "\"\n"
                        << "[data]\nimage_size = 16\n[data.synthetic]\nper_class = 4\nwidth = 32\nheight = 24\n"
                        << "[tune]\nmax_trials = 1\nepochs = 1\n" << tune;
    StudyConfig study = load_study_config(file, registry_);
    study.settings.folder = folder_;
    return study;
  }

  fs::path folder_;
  PluginRegistry registry_;
};

TEST_F(TuneEndToEndTest, QuickStudyTrainsEveryTrialWritesItsOutputsAndRetrainsTheBest) {
  StudyConfig study = load_study_config(kQuickConfig, registry_);
  study.settings.folder = folder_;
  ASSERT_EQ(study.space.dimensions.size(), 7u);
  StudyStore store(folder_ / "study.db");
  auto summary = train_study(study, store);
  EXPECT_EQ(summary.completed + summary.failed, 6);
  EXPECT_GE(summary.completed, 4) << "most quick trials must train";

  const auto trials = store.trials();
  ASSERT_EQ(trials.size(), 6u);
  for (const auto& t : trials) {
    if (t.record.state != sdk::TrialRecord::State::Complete) continue;
    EXPECT_GE(t.objective, 0.0);
    EXPECT_LE(t.objective, 1.0);
    EXPECT_EQ(t.epochs_used, 2);
    const fs::path trial = trial_folder(folder_, t.record.id);
    EXPECT_TRUE(fs::exists(trial / "execution-0.toml"));
    bool has_metrics = false;
    for (const auto& entry : fs::directory_iterator(trial / "execution-0"))
      has_metrics |= fs::exists(entry.path() / "metrics.json");
    EXPECT_TRUE(has_metrics) << trial;
  }

  write_study_outputs(folder_, trials, study.space, study.settings);
  for (const char* file : {"trials.csv", "trials.json", "best_so_far.png", "objective_model.filters.png",
                           "objective_optimizer.lr.png", "objective_optimizer.plugin.png", "study.html"})
    EXPECT_TRUE(fs::exists(folder_ / file)) << file;

  ASSERT_TRUE(write_best_trial_config(study, trials, folder_));
  auto best = best_trial(trials);
  ASSERT_TRUE(best.has_value());
  // The best trial's config is a plain experiment: it plans without any [tune] table, with
  // the best trial's values.
  Config config = Config::load(folder_ / "best_trial.toml");
  EXPECT_FALSE(config.contains("tune"));
  ExperimentPlan plan = plan_experiment(config, registry_);
  EXPECT_EQ(plan.model_plugin, "model4a");
  EXPECT_EQ(plan.optimizer_plugin, std::get<std::string>(best->record.params.at("optimizer.plugin")));
  EXPECT_EQ(plan.train.epochs, 2);
  EXPECT_EQ(sdk::to_string(config.table("model").raw("filters")), sdk::to_string(best->record.params.at("model.filters")));

  auto runs = retrain_top_trials(study, trials, options_);
  ASSERT_EQ(runs.size(), 1u);
  ASSERT_NE(runs[0].split("test"), nullptr);
  EXPECT_GT(runs[0].split("test")->size, 0);
  EXPECT_EQ(runs[0].history.size(), 2u);
}

// Hyperband with real training: a promoted trial starts from a copy of its parent's run
// folder and resumes its checkpoint, so its first epochs are the parent's own records
// (wall-clock seconds included, which a retraining from epoch 0 could not reproduce) and
// only the added epochs are counted as used.
TEST_F(TuneEndToEndTest, HyperbandPromotionsContinueTheirParentsRunInsteadOfRetraining) {
  const fs::path file = folder_ / "hyperband.toml";
  std::ofstream(file) << "extends = \"" << (kQuickConfig.parent_path().parent_path() / "quickstart.toml").string()
                      << "\"\n"
                      << "[data]\nimage_size = 32\n[data.synthetic]\nper_class = 12\nwidth = 64\nheight = 48\n"
                      << "[train]\nbatch_size = 16\n"
                      << "[tune]\ntuner = \"hyperband\"\nmax_trials = 6\nepochs = 3\ntop_k = 1\n"
                      << "[tune.options]\nmax_epochs = 3\nfactor = 3\n"
                      << "[tune.space.model.filters]\ntype = \"int\"\nmin = 8\nmax = 32\nstep = 8\n"
                      << "[tune.space.optimizer.lr]\ntype = \"float\"\nmin = 1e-4\nmax = 1e-2\nlog = true\n";
  StudyConfig study = load_study_config(file, registry_);
  study.settings.folder = folder_;
  StudyStore store(folder_ / "study.db");
  auto summary = train_study(study, store);
  // max_epochs 3, factor 3: bracket s=1 runs three trials for 1 epoch and promotes the best
  // to 3; bracket s=0 runs two trials for 3 epochs.
  ASSERT_EQ(summary.completed, 6);

  auto history_of = [&](int64_t id) {
    const fs::path executions = trial_folder(folder_, id) / "execution-0";
    for (const auto& entry : fs::directory_iterator(executions))
      if (fs::exists(entry.path() / "metrics.json"))
        return run_summary_from_json(nlohmann::json::parse(read_file(entry.path() / "metrics.json")),
                                     entry.path() / "metrics.json")
            .history;
    ADD_FAILURE() << "no finished run in " << executions;
    return std::vector<EpochRecord>{};
  };
  int promotions = 0;
  for (const auto& t : store.trials()) {
    if (t.record.resume_from < 0) continue;
    ++promotions;
    EXPECT_EQ(t.record.epochs, 3);
    EXPECT_EQ(t.epochs_used, 2) << "a promotion counts only the epochs it added";
    const auto parent = history_of(t.record.resume_from);
    const auto child = history_of(t.record.id);
    ASSERT_EQ(parent.size(), 1u);
    ASSERT_EQ(child.size(), 3u);
    EXPECT_EQ(child[0].train.loss, parent[0].train.loss);
    EXPECT_EQ(child[0].val.accuracy, parent[0].val.accuracy);
    EXPECT_EQ(child[0].seconds, parent[0].seconds) << "the parent's epoch was trained again";
    EXPECT_NE(child[1].seconds, parent[0].seconds);
  }
  EXPECT_EQ(promotions, 1);
}

TEST_F(TuneEndToEndTest, AMisspeltDimensionIsReportedAtItsTableInTheStudyConfig) {
  const fs::path file = folder_ / "study.toml";
  std::ofstream(file) << "extends = \"" << kQuickConfig.string() << "\"\n"
                      << "[tune.space.model.filter]\ntype = \"int\"\nmin = 8\nmax = 16\nstep = 8\n";
  try {
    load_study_config(file, registry_);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "1 problem in " + file.string() + ":\n  " + file.string() +
                  ":3: [tune.space.model.filter] names a setting the experiment does not take: [model] unknown key "
                  "\"filter\"; did you mean \"filters\"?");
  }
}

// A value a plugin refuses is reported at the dimension whose [table] key the plugin's
// problem names (from the problem's table and key, not its text), with the value: once for
// the dimension's first value, which every other assignment starts from, and once for its
// other end.
TEST_F(TuneEndToEndTest, AValueThePluginRefusesIsReportedAtItsDimensionWithTheValue) {
  const fs::path file = folder_ / "study.toml";
  std::ofstream(file) << "extends = \"" << kQuickConfig.string() << "\"\n"
                      << "[tune.space.model.dropout]\ntype = \"float\"\nmin = 1.5\nmax = 2.5\n";
  try {
    load_study_config(file, registry_);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string where = file.string() + ":3: [tune.space.model.dropout] value ";
    EXPECT_EQ(std::string(e.what()),
              "2 problems in " + file.string() + ":\n  " + where +
                  "1.5 does not work in the experiment: [model] dropout must be in 0.0..0.99 (was 1.5); narrow the "
                  "range or drop the value\n  " +
                  where +
                  "2.5 does not work in the experiment: [model] dropout must be in 0.0..0.99 (was 2.5); narrow the "
                  "range or drop the value");
  }
}

TEST_F(TuneEndToEndTest, TwoWorkerProcessesShareTheStudyThroughTheCommandLine) {
  const fs::path program = fs::path(BACHLAB_BINARY_DIR) / "bachlab";
  ASSERT_TRUE(fs::exists(program)) << program << " is not built; the test depends on it (tests/tune/CMakeLists.txt)";
  const std::string command = program.string() + " tune " + kQuickConfig.string() + " --workers 2 --quiet --folder " +
                              folder_.string() + " > " + (folder_ / "out.txt").string() + " 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << std::ifstream(folder_ / "out.txt").rdbuf();
  StudyStore store(folder_ / "study.db");
  const auto trials = store.trials();
  ASSERT_EQ(trials.size(), 6u);
  std::set<std::string> owners;
  for (const auto& t : trials) {
    EXPECT_NE(t.record.state, sdk::TrialRecord::State::Running);
    EXPECT_EQ(t.attempts, 1) << "trial " << t.record.id << " was handed out twice";
    owners.insert(t.owner);
  }
  EXPECT_EQ(owners.size(), 2u) << "both worker processes ran trials";
  // Both workers asked for the synthetic set on an empty cache at their first trial: one
  // drew it, the other waited for it (or found it made).
  const std::string out = read_file(folder_ / "out.txt");
  size_t drawn = 0;
  for (size_t at = out.find("synth: wrote "); at != std::string::npos; at = out.find("synth: wrote ", at + 1)) ++drawn;
  EXPECT_EQ(drawn, 1u) << out;
  EXPECT_TRUE(fs::exists(folder_ / "best_trial.toml"));
  const std::string status = program.string() + " tune --status " + folder_.string() + " > " +
                             (folder_ / "status.txt").string() + " 2>&1";
  ASSERT_EQ(std::system(status.c_str()), 0);
  std::ifstream in(folder_ / "status.txt");
  std::string first, second, third;
  std::getline(in, first);
  std::getline(in, second);
  std::getline(in, third);
  EXPECT_EQ(first, "study " + folder_.string());
  EXPECT_EQ(second, "tuner bayesian, objective val_accuracy (max), up to 6 trials");
  EXPECT_NE(third.find("trials: "), std::string::npos) << third;
}

// Issue #21 item 14 through the command line: a finished 2-trial study resumed with
// tune.max_trials=3 trains exactly one more trial, the one a 3-trial study trains (the
// Gaussian process proposes it from the first two); lowering max_trials below the trials
// the study has, or changing anything else, is refused. The study page shows all three.
TEST_F(TuneEndToEndTest, ResumeWithARaisedMaxTrialsContinuesAFinishedStudy) {
  const fs::path program = fs::path(BACHLAB_BINARY_DIR) / "bachlab";
  ASSERT_TRUE(fs::exists(program)) << program << " is not built; the test depends on it (tests/tune/CMakeLists.txt)";
  const fs::path file = folder_ / "study.toml";
  std::ofstream(file) << "extends = \"" << kQuickConfig.string() << "\"\n"
                      << "[data]\nimage_size = 16\n[data.synthetic]\nper_class = 4\nwidth = 32\nheight = 24\n"
                      << "[tune]\nmax_trials = 2\nepochs = 1\ntop_k = 0\n[tune.options]\ninitial_points = 2\n";
  auto tune = [&](const fs::path& study, const std::string& arguments) {
    const std::string command = "'" + program.string() + "' tune '" + file.string() + "' --quiet --folder '" +
                                study.string() + "' " + arguments + " > '" + (folder_ / "out.txt").string() + "' 2>&1";
    const int status = std::system(command.c_str());
    return std::make_pair(WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(folder_ / "out.txt"));
  };
  const fs::path study = folder_ / "study";
  auto [code, out] = tune(study, "");
  ASSERT_EQ(code, 0) << out;
  std::vector<StoredTrial> before;
  {
    StudyStore store(study / "study.db");
    before = store.trials();
    EXPECT_TRUE(store.get("finished").has_value());
  }
  ASSERT_EQ(before.size(), 2u);

  std::tie(code, out) = tune(study, "--resume tune.max_trials=1");
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("max_trials = 1 is below the 2 trials the study in "), std::string::npos) << out;
  std::tie(code, out) = tune(study, "--resume tune.max_trials=3 tune.epochs=2");
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("What differs:\n  study:  epochs = 1\n  yours:  epochs = 2"), std::string::npos) << out;

  std::tie(code, out) = tune(study, "--resume tune.max_trials=3");
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("the study goes on up to 3 trials (it had max_trials = 2, and has 2 trials)\n"), std::string::npos)
      << out;
  EXPECT_NE(out.find("up to 3 trials\ntrials: 3 complete, 0 failed, 0 running\n"), std::string::npos) << out;
  EXPECT_NE(out.find("page: " + (study / "study.html").string() + "\n"), std::string::npos) << out;
  StudyStore store(study / "study.db");
  const auto after = store.trials();
  ASSERT_EQ(after.size(), 3u);
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i].record.state, sdk::TrialRecord::State::Complete) << "trial " << i;
    EXPECT_EQ(after[i].attempts, 1) << "trial " << i;
  }
  for (size_t i = 0; i < before.size(); ++i)
    EXPECT_EQ(after[i].finished, before[i].finished) << "trial " << i << " was trained again";

  // A study started with max_trials = 3 trains the same third trial.
  const fs::path fresh = folder_ / "fresh";
  std::tie(code, out) = tune(fresh, "tune.max_trials=3");
  ASSERT_EQ(code, 0) << out;
  const auto reference = StudyStore(fresh / "study.db").trials();
  ASSERT_EQ(reference.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(after[i].record.params, reference[i].record.params) << "trial " << i;
    EXPECT_EQ(after[i].objective, reference[i].objective) << "trial " << i;
  }

  const std::string page = read_file(study / "study.html");
  for (int id = 0; id < 3; ++id)
    EXPECT_NE(page.find(fmt::format("\"><td>{}", id)), std::string::npos) << "trial " << id << " is not on the page";
  EXPECT_NE(page.find("up to 3 trials"), std::string::npos);
}

// A trial folder belongs to the params it was trained with: when study.db is removed and
// the study begun again with another space, trial 0 gets other params and must train them,
// not "complete" at once with the metrics an earlier trial 0 left in its folder.
TEST_F(TuneEndToEndTest, ATrialFolderTrainedWithOtherParamsIsNeverReused) {
  StudyConfig study = tiny_study("");
  TrialFunction trial = training_trial_function(study, options_);
  TrialRequest request;
  request.trial.id = 0;
  request.trial.epochs = 1;
  request.trial.params = {{"optimizer.plugin", std::string("adam")}, {"optimizer.lr", 0.0804}};
  request.folder = trial_folder(folder_, 0);
  fs::create_directories(request.folder);
  auto history_lr = [&] {
    for (const auto& entry : fs::directory_iterator(request.folder / "execution-0"))
      if (fs::exists(entry.path() / "metrics.json"))
        return run_summary_from_json(nlohmann::json::parse(read_file(entry.path() / "metrics.json")),
                                     entry.path() / "metrics.json")
            .history.at(0)
            .lr;
    return -1.0;
  };
  trial(request);
  EXPECT_DOUBLE_EQ(history_lr(), 0.0804);
  // Asked again with the same params (a worker died after training): the run is reused.
  const auto first = fs::last_write_time(request.folder / "execution-0" / "trial-key.txt");
  trial(request);
  EXPECT_EQ(fs::last_write_time(request.folder / "execution-0" / "trial-key.txt"), first);

  request.trial.params["optimizer.lr"] = 0.00235;
  trial(request);
  EXPECT_DOUBLE_EQ(history_lr(), 0.00235) << "the earlier trial 0's results were taken for this one";
}

// The top trials' retraining folder (top/<rank>-trial-<id>) of a study begun again after
// its study.db was removed: the earlier study's run there is never reported as this one's.
TEST_F(TuneEndToEndTest, ARetrainedTopTrialOfAnotherStudyIsNeverReused) {
  StudyConfig study = tiny_study("top_k = 1\n");
  StoredTrial trial;
  trial.record.id = 0;
  trial.record.state = sdk::TrialRecord::State::Complete;
  trial.record.epochs = 1;
  trial.record.params = {{"optimizer.plugin", std::string("adam")}, {"optimizer.lr", 0.0804}};
  trial.objective = 0.5;
  auto retrained_lr = [&] {
    const auto runs = retrain_top_trials(study, {trial}, options_);
    return runs.at(0).history.at(0).lr;
  };
  EXPECT_DOUBLE_EQ(retrained_lr(), 0.0804);
  // The same study asked again (a resumed study): the retrain is reused, not trained again.
  const fs::path key = folder_ / "top" / "1-trial-0000" / "trial-key.txt";
  ASSERT_TRUE(fs::exists(key));
  const auto first = fs::last_write_time(key);
  EXPECT_DOUBLE_EQ(retrained_lr(), 0.0804);
  EXPECT_EQ(fs::last_write_time(key), first);
  // Another study's best trial 0, in the same folder.
  trial.record.params["optimizer.lr"] = 0.00235;
  EXPECT_DOUBLE_EQ(retrained_lr(), 0.00235) << "the earlier study's retrain was taken for this one";
}

// Issue #22 item 6: a trial whose search point cannot fit in memory fails at once with the
// arithmetic `check` and `run` give, instead of allocating until LibTorch gives up.
TEST_F(TuneEndToEndTest, ATrialThatCannotFitInMemoryFailsWithTheEstimate) {
  // 2048 float batches of 3x4096x4096 and their normalised copies: over 800 GB.
  const fs::path file = folder_ / "study.toml";
  std::ofstream(file) << "extends = \"" << kQuickConfig.string() << "\"\n"
                      << "[data]\nimage_size = 4096\n[data.synthetic]\nper_class = 4\nwidth = 32\nheight = 24\n"
                      << "[train]\nbatch_size = 2048\n[tune]\nmax_trials = 1\nepochs = 1\n";
  StudyConfig study = load_study_config(file, registry_);
  study.settings.folder = folder_;
  TrialRequest request;
  request.trial.id = 0;
  request.trial.epochs = 1;
  request.trial.params = {{"optimizer.plugin", std::string("adam")}, {"optimizer.lr", 0.001}};
  request.folder = folder_ / "trials" / "0000";
  try {
    training_trial_function(study, options_)(request);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("execution-0.toml: this run needs more than this machine's"), std::string::npos) << message;
    EXPECT_NE(message.find("16 photos of 3x4096x4096"), std::string::npos) << message;
  }
  EXPECT_FALSE(fs::exists(request.folder / "execution-0" / "execution-0")) << "a run folder was made";
}

// Workers live only as long as their coordinator: a kill -9 of `bachlab tune --workers 2`
// stops both workers (their trials stay "running" until --resume hands them out again).
TEST_F(TuneEndToEndTest, KillingTheCoordinatorStopsItsWorkers) {
  const fs::path program = fs::path(BACHLAB_BINARY_DIR) / "bachlab";
  ASSERT_TRUE(fs::exists(program)) << program << " is not built; the test depends on it (tests/tune/CMakeLists.txt)";
  const fs::path file = folder_ / "long.toml";
  std::ofstream(file) << "extends = \"" << kQuickConfig.string() << "\"\n"
                      << "[data]\nimage_size = 16\n[data.synthetic]\nper_class = 4\nwidth = 32\nheight = 24\n"
                      << "[tune]\nmax_trials = 4\nepochs = 1000000\n";
  const fs::path pid_file = folder_ / "coordinator.pid";
  const std::string command = "'" + program.string() + "' tune '" + file.string() + "' --workers 2 --quiet --folder '" +
                              folder_.string() + "' >'" + (folder_ / "out.txt").string() + "' 2>&1 & echo $! >'" +
                              pid_file.string() + "'";
  ASSERT_EQ(std::system(command.c_str()), 0);
  const pid_t coordinator = std::stoi(read_file(pid_file));

  // Wait (bounded) until both workers are running a trial.
  std::vector<pid_t> workers;
  for (int i = 0; i < 600 && workers.size() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    workers.clear();
    if (!fs::exists(folder_ / "study.db")) continue;
    try {
      StudyStore store(folder_ / "study.db");
      for (const auto& t : store.trials())
        if (t.record.state == sdk::TrialRecord::State::Running && !t.owner.empty())
          workers.push_back(std::stoi(t.owner.substr(t.owner.find(':') + 1)));
    } catch (const Error&) {
      // the coordinator is still creating the database
    }
  }
  ASSERT_EQ(workers.size(), 2u) << read_file(folder_ / "out.txt");

  ::kill(coordinator, SIGKILL);
  for (pid_t worker : workers) {
    bool gone = false;
    for (int i = 0; i < 200 && !gone; ++i) {
      gone = ::kill(worker, 0) != 0 && errno == ESRCH;
      // A worker killed before the coordinator's shell reaps it stays a zombie: also gone.
      if (!gone) {
        std::ifstream stat("/proc/" + std::to_string(worker) + "/stat");
        std::string pid, name, state;
        stat >> pid >> name >> state;
        gone = state == "Z";
      }
      if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_TRUE(gone) << "worker " << worker << " kept running after its coordinator was killed";
    if (!gone) ::kill(worker, SIGKILL);
  }
}

}  // namespace
}  // namespace bachlab::host
