// The quick tuning study of configs/tune/ trained for real on tiny synthetic photos: every
// trial trains and is scored on validation, the tables and plots are written, the best
// trial comes out as a config that plans as a normal experiment, the best trial is
// retrained and tested; and the same study through `bachlab tune --workers 2`.
#include "host/config/config.h"
#include "host/plugins/registry.h"
#include "host/train/experiment.h"
#include "host/tune/study.h"
#include "host/tune/study_report.h"
#include "host/tune/trial_training.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <set>

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
    registry_.scan({BACHLAB_TEST_PLUGIN_DIR});
  }
  void TearDown() override { fs::remove_all(folder_); }

  fs::path folder_;
  PluginRegistry registry_;
};

TEST_F(TuneEndToEndTest, QuickStudyTrainsEveryTrialWritesItsOutputsAndRetrainsTheBest) {
  StudyConfig study = load_study_config(kQuickConfig, registry_);
  study.settings.folder = folder_;
  ASSERT_EQ(study.space.dimensions.size(), 7u);
  StudyStore store(folder_ / "study.db");
  auto tuner = registry_.create_tuner(study.settings.tuner, study.space, study_settings(study.settings),
                                      study.tuner_params);
  TrainingTrialOptions options;
  options.threads = 2;
  options.plugin_paths = {BACHLAB_TEST_PLUGIN_DIR};
  auto summary = run_worker(store, *tuner, study.settings, folder_, training_trial_function(study, options));
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
                           "objective_optimizer.lr.png", "objective_optimizer.plugin.png"})
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

  auto runs = retrain_top_trials(study, trials, options);
  ASSERT_EQ(runs.size(), 1u);
  ASSERT_NE(runs[0].split("test"), nullptr);
  EXPECT_GT(runs[0].split("test")->size, 0);
  EXPECT_EQ(runs[0].history.size(), 2u);
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

TEST_F(TuneEndToEndTest, TwoWorkerProcessesShareTheStudyThroughTheCommandLine) {
  const fs::path program = fs::path(BACHLAB_BINARY_DIR) / "bachlab";
  if (!fs::exists(program)) GTEST_SKIP() << program << " is not built";
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
  }
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

}  // namespace
}  // namespace bachlab::host
