// Studies without training: the trial is a known function, so these check the store and
// the worker loop alone. A kill at any moment loses and repeats nothing; two workers never
// run the same trial; a failed trial is recorded and skipped; the study stops after too
// many failures in a row; the search space is read and validated from TOML.
#include "host/config/config.h"
#include "host/tune/study.h"
#include "host/tune/study_open.h"
#include "host/tune/study_report.h"
#include "host/tune/study_store.h"
#include "host/tune/tune_config.h"
#include "host/util/atomic_file.h"
#include "tests/tune/tuner_harness.h"

#include <bachlab/sdk/hash.h>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

namespace bachlab::host {
namespace {

namespace fs = std::filesystem;
using testing::as_number;

struct Killed {};  // not a std::exception: escapes the worker loop as a kill would

class StudyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    folder_ = fs::temp_directory_path() /
              ("bachlab_study_test_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(folder_);
    fs::create_directories(folder_);
    space_.dimensions = {testing::float_dimension("f.x1", -5, 10), testing::float_dimension("f.x2", 0, 15)};
    settings_.objective = "val_loss";
    settings_.maximize = false;
    settings_.max_trials = 10;
    settings_.seed = 5;
    settings_.max_consecutive_failures = 3;
  }
  void TearDown() override { fs::remove_all(folder_); }

  std::shared_ptr<sdk::Tuner> tuner(const std::string& name = "random") {
    return testing::make_tuner(name, space_, settings_.max_trials, settings_.seed);
  }

  static double objective(const sdk::Assignment& a) {
    return testing::branin(as_number(a.at("f.x1")), as_number(a.at("f.x2")));
  }

  WorkerOptions quiet(const std::string& owner) {
    WorkerOptions o;
    o.owner = owner;
    o.wait = std::chrono::milliseconds(5);
    return o;
  }

  fs::path folder_;
  sdk::SearchSpace space_;
  TuneSettings settings_;
};

TEST_F(StudyTest, ResumeAfterAKillLosesAndRepeatsNothing) {
  // The uninterrupted study, for reference.
  std::vector<StoredTrial> reference;
  {
    StudyStore store(folder_ / "reference.db");
    auto t = tuner();
    run_worker(store, *t, settings_, folder_ / "reference",
               [](const TrialRequest& r) { return TrialResult{objective(r.trial.params), r.trial.epochs}; },
               quiet("reference"));
    reference = store.trials();
  }
  ASSERT_EQ(reference.size(), 10u);

  std::map<int64_t, int> runs;
  std::map<int64_t, sdk::Assignment> first_values;
  {
    StudyStore store(folder_ / "study.db");
    auto t = tuner();
    EXPECT_THROW(run_worker(store, *t, settings_, folder_,
                            [&](const TrialRequest& r) -> TrialResult {
                              ++runs[r.trial.id];
                              first_values[r.trial.id] = r.trial.params;
                              if (r.trial.id == 6) throw Killed{};
                              return {objective(r.trial.params), r.trial.epochs};
                            },
                            quiet("worker-that-dies")),
                 Killed);
  }
  // The process is gone: a new one opens the store, hands the orphan back, and goes on.
  StudyStore store(folder_ / "study.db");
  {
    auto before = store.trials();
    ASSERT_EQ(before.size(), 7u);
    EXPECT_EQ(before[6].record.state, sdk::TrialRecord::State::Running);
    EXPECT_EQ(before[6].owner, "worker-that-dies");
  }
  EXPECT_EQ(store.release_orphans([](const std::string& owner) { return owner != "worker-that-dies"; }),
            std::vector<int64_t>{6});
  auto t = tuner();
  std::vector<bool> retried;
  run_worker(store, *t, settings_, folder_,
             [&](const TrialRequest& r) {
               ++runs[r.trial.id];
               retried.push_back(r.retry);
               if (r.trial.id == 6) EXPECT_EQ(r.trial.params, first_values[6]) << "the redone trial changed its values";
               return TrialResult{objective(r.trial.params), r.trial.epochs};
             },
             quiet("second-worker"));
  ASSERT_FALSE(retried.empty());
  EXPECT_TRUE(retried.front()) << "the trial that was running must be redone first";

  auto trials = store.trials();
  ASSERT_EQ(trials.size(), reference.size());
  for (size_t i = 0; i < trials.size(); ++i) {
    EXPECT_EQ(trials[i].record.state, sdk::TrialRecord::State::Complete) << "trial " << i;
    EXPECT_EQ(trials[i].record.params, reference[i].record.params) << "trial " << i << " differs from the uninterrupted study";
    EXPECT_DOUBLE_EQ(trials[i].objective, reference[i].objective) << "trial " << i;
    // Completed trials ran once; the one killed ran again, once.
    EXPECT_EQ(runs[static_cast<int64_t>(i)], i == 6 ? 2 : 1) << "trial " << i;
  }
  EXPECT_EQ(trials[6].attempts, 2);
}

// Issue #21 item 14: `--resume` with a raised max_trials continues a finished study, and
// the tuner, seeing every earlier trial, proposes exactly what a study started with the
// larger max_trials did. Lowering it below the trials the study has, changing anything
// else, or joining with another max_trials is refused.
TEST_F(StudyTest, ARaisedMaxTrialsContinuesAFinishedStudyAsALargerStudyWould) {
  sdk::ParamTable options("[tune.options]");
  options.set("initial_points", int64_t{2});  // the third trial comes from the Gaussian process
  auto bayesian = [&](int64_t max_trials) {
    return testing::make_tuner("bayesian", space_, max_trials, settings_.seed, options);
  };
  const fs::path file = folder_ / "study.toml";
  auto config_text = [](int64_t max_trials, int64_t epochs) {
    return fmt::format("[tune]\ntuner = \"bayesian\"\nmax_trials = {}\nepochs = {}\n[tune.options]\ninitial_points = 2\n",
                       max_trials, epochs);
  };
  auto study_of = [&](int64_t max_trials) {
    StudyConfig study;
    study.file = file;
    study.settings = settings_;
    study.settings.max_trials = max_trials;
    study.space = space_;
    return study;
  };
  std::map<int64_t, int> runs;
  auto score = [&](const TrialRequest& r) {
    ++runs[r.trial.id];
    return TrialResult{objective(r.trial.params), r.trial.epochs};
  };

  std::vector<StoredTrial> reference;
  {
    StudyStore store(folder_ / "reference.db");
    open_study(store, study_of(3), config_text(3, 10), StudyOpening::start, folder_);
    run_worker(store, *bayesian(3), study_of(3).settings, folder_ / "reference", score, quiet("reference"));
    reference = store.trials();
  }
  ASSERT_EQ(reference.size(), 3u);
  runs.clear();

  StudyStore store(folder_ / "study.db");
  open_study(store, study_of(2), config_text(2, 10), StudyOpening::start, folder_);
  run_worker(store, *bayesian(2), study_of(2).settings, folder_, score, quiet("w"));
  store.set("finished", "2024-01-01 00:00:00");  // as `bachlab tune` marks a study it finished
  ASSERT_EQ(store.trials().size(), 2u);

  auto refusal = [&](int64_t max_trials, int64_t epochs, StudyOpening how) {
    try {
      open_study(store, study_of(max_trials), config_text(max_trials, epochs), how, folder_);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  const std::string where = store.storage().url;
  EXPECT_EQ(refusal(1, 10, StudyOpening::resume),
            file.string() + ": max_trials = 1 is below the 2 trials the study in " + where +
                " already has (2 finished); a study keeps its trials: give max_trials = 2 or more, e.g. `bachlab tune " +
                file.string() + " --resume tune.max_trials=2`");
  EXPECT_THAT(refusal(3, 20, StudyOpening::resume),
              ::testing::HasSubstr("study.toml); a worker joins and a study resumes only under the config it "
                                   "started with, data settings included ([tune] max_trials alone may change, with "
                                   "--resume): restore the config, or start a new study with another [tune] folder or "
                                   "storage. What differs:\n  study:  epochs = 10\n  yours:  epochs = 20"));
  EXPECT_EQ(refusal(3, 10, StudyOpening::join),
            file.string() + ": max_trials = 3, but the study in " + where +
                " runs up to 2 trials; join with its max_trials (`bachlab tune " + file.string() +
                " --join tune.max_trials=2`), or change it with --resume on the machine that started the study");
  EXPECT_EQ(store.get("max_trials"), "2") << "a refused opening changed the study";

  std::ostringstream log;
  open_study(store, study_of(3), config_text(3, 10), StudyOpening::resume, folder_, &log);
  EXPECT_EQ(log.str(), "the study goes on up to 3 trials (it had max_trials = 2, and has 2 trials)\n");
  EXPECT_EQ(store.get("max_trials"), "3");
  EXPECT_FALSE(store.get("finished").has_value()) << "a study that takes more trials is not finished";
  const auto summary = run_worker(store, *bayesian(3), study_of(3).settings, folder_, score, quiet("w"));
  EXPECT_EQ(summary.completed, 1);

  const auto trials = store.trials();
  ASSERT_EQ(trials.size(), 3u);
  for (size_t i = 0; i < trials.size(); ++i) {
    EXPECT_EQ(runs[static_cast<int64_t>(i)], 1) << "trial " << i;
    EXPECT_EQ(trials[i].record.params, reference[i].record.params) << "trial " << i << " differs from the 3-trial study";
    EXPECT_DOUBLE_EQ(trials[i].objective, reference[i].objective) << "trial " << i;
  }
  // The premise: the third trial depends on the first two (their scores steer the Gaussian
  // process), so a tuner that had not seen them could not have proposed it.
  std::vector<sdk::TrialRecord> swapped = {trials[0].record, trials[1].record};
  std::swap(swapped[0].score, swapped[1].score);
  EXPECT_NE(bayesian(3)->ask(swapped).params, trials[2].record.params)
      << "the third trial does not depend on the earlier ones' scores, so this test proved nothing";

  // Lowering it to the trials the study has is allowed; below them, refused.
  EXPECT_THAT(refusal(2, 10, StudyOpening::resume), ::testing::HasSubstr("is below the 3 trials"));
  EXPECT_EQ(refusal(3, 10, StudyOpening::resume), "(no error)");
}

// A study made before max_trials could change recorded the digest of its whole config: it
// resumes under that config (and may then take more trials).
TEST_F(StudyTest, AStudyRecordedWithTheWholeConfigsDigestResumes) {
  const std::string text = "[tune]\nmax_trials = 2\n";
  StudyConfig study;
  study.file = folder_ / "study.toml";
  study.settings = settings_;
  study.settings.max_trials = 2;
  StudyStore store(folder_ / "study.db");
  open_study(store, study, text, StudyOpening::start, folder_);
  const std::string old_digest = fmt::format("{:016x}", sdk::hash_text(text));
  store.set("fingerprint", old_digest);
  study.settings.max_trials = 4;
  open_study(store, study, "[tune]\nmax_trials = 4\n", StudyOpening::resume, folder_);
  EXPECT_EQ(store.get("max_trials"), "4");
  EXPECT_EQ(store.get("fingerprint"), study_fingerprint(text));
  EXPECT_NE(study_fingerprint(text), old_digest);
  EXPECT_EQ(study_fingerprint(text), study_fingerprint("[tune]\nmax_trials = 4\n"));
}

TEST_F(StudyTest, TwoWorkersNeverRunTheSameTrial) {
  settings_.max_trials = 24;
  { StudyStore create(folder_ / "study.db"); }
  std::mutex mutex;
  std::multiset<int64_t> ran;
  std::map<std::string, int> per_worker;
  // A barrier instead of a sleep: the first worker inside a trial waits there until the
  // other is inside one too, so the two provably run trials at the same time however
  // loaded the machine is. The wait is bounded so that a lone worker fails the test
  // instead of hanging it.
  std::condition_variable met_cv;
  int inside = 0;
  bool met = false;
  auto worker = [&](const std::string& owner) {
    // Each worker has its own connection and its own tuner, as a separate process would.
    StudyStore store(folder_ / "study.db");
    auto t = testing::make_tuner("bayesian", space_, settings_.max_trials, settings_.seed);
    run_worker(store, *t, settings_, folder_,
               [&](const TrialRequest& r) {
                 std::unique_lock<std::mutex> lock(mutex);
                 if (++inside == 2) met = true;
                 met_cv.notify_all();
                 met_cv.wait_for(lock, std::chrono::seconds(30), [&] { return met; });
                 ran.insert(r.trial.id);
                 ++per_worker[owner];
                 --inside;
                 return TrialResult{objective(r.trial.params), r.trial.epochs};
               },
               quiet(owner));
  };
  std::thread a(worker, "worker-a"), b(worker, "worker-b");
  a.join();
  b.join();

  EXPECT_EQ(ran.size(), 24u);
  for (int64_t id = 0; id < 24; ++id) EXPECT_EQ(ran.count(id), 1u) << "trial " << id;
  EXPECT_TRUE(met) << "the workers never ran at the same time, so this test proved nothing";
  EXPECT_GT(per_worker["worker-a"], 0);
  EXPECT_GT(per_worker["worker-b"], 0);
  StudyStore store(folder_ / "study.db");
  std::set<sdk::Assignment> distinct;
  for (const auto& t : store.trials()) {
    EXPECT_EQ(t.record.state, sdk::TrialRecord::State::Complete);
    distinct.insert(t.record.params);
  }
  EXPECT_EQ(distinct.size(), 24u) << "two workers were given the same values";
}

TEST_F(StudyTest, AFailedTrialIsRecordedWithItsMessageAndTheStudyGoesOn) {
  StudyStore store(folder_ / "study.db");
  auto t = tuner();
  auto summary = run_worker(store, *t, settings_, folder_,
                            [](const TrialRequest& r) -> TrialResult {
                              if (r.trial.id == 2) throw Error("out of memory while building the model");
                              if (r.trial.id == 4) return {std::nan(""), 3};
                              return {objective(r.trial.params), r.trial.epochs};
                            },
                            quiet("w"));
  EXPECT_EQ(summary.completed, 8);
  EXPECT_EQ(summary.failed, 2);
  auto trials = store.trials();
  ASSERT_EQ(trials.size(), 10u);
  EXPECT_EQ(trials[2].record.state, sdk::TrialRecord::State::Failed);
  EXPECT_EQ(trials[2].message, "out of memory while building the model");
  EXPECT_EQ(trials[4].record.state, sdk::TrialRecord::State::Failed);
  EXPECT_EQ(trials[4].message,
            "the objective val_loss was nan (the loss diverged; a smaller learning rate usually helps)");
  EXPECT_EQ(trials[4].epochs_used, 3);
  EXPECT_EQ(trials[3].record.state, sdk::TrialRecord::State::Complete);
  // The best trial never is a failed one.
  auto best = best_trial(trials);
  ASSERT_TRUE(best.has_value());
  EXPECT_NE(best->record.id, 2);
  EXPECT_NE(best->record.id, 4);
}

TEST_F(StudyTest, TheStudyStopsAfterTooManyFailuresInARow) {
  StudyStore store(folder_ / "study.db");
  auto t = tuner();
  int calls = 0;
  try {
    run_worker(store, *t, settings_, folder_,
               [&](const TrialRequest& r) -> TrialResult {
                 ++calls;
                 if (r.trial.id == 0) return {1.0, 1};
                 throw Error("config.toml: [model] filters must be in 1..4096 (was 0)");
               },
               quiet("w"));
    FAIL() << "expected the study to stop";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              folder_.string() +
                  ": the study stopped: 3 trials failed in a row (max_consecutive_failures = 3); the last one failed "
                  "with: trial 3: config.toml: [model] filters must be in 1..4096 (was 0)\n"
                  "Fix the cause (or raise [tune] max_consecutive_failures), then continue with `bachlab tune CONFIG "
                  "--resume`");
  }
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(store.consecutive_failures(), 3);
}

TEST_F(StudyTest, OrphansOfLiveProcessesAreLeftAlone) {
  StudyStore store(folder_ / "study.db");
  auto t = tuner();
  auto claim = store.claim([&](const std::vector<sdk::TrialRecord>& h) { return t->ask(h); }, this_process_owner());
  ASSERT_EQ(claim.kind, Claim::Kind::Run);
  EXPECT_TRUE(owner_alive(this_process_owner()));
  EXPECT_TRUE(store.release_orphans().empty()) << "this process is alive: its trial must not be handed out again";
  // A pid that cannot exist on this host is dead.
  const std::string owner = this_process_owner();
  const std::string dead = owner.substr(0, owner.find(':')) + ":999999999:1";
  EXPECT_FALSE(owner_alive(dead));
}

// Issue #21 item 6: a trial whose worker on this machine is gone is shown as interrupted by
// `tune --status`, not as running; a live worker's trial is running.
TEST_F(StudyTest, StatusCallsATrialOfAGoneWorkerInterrupted) {
  StudyStore store(folder_ / "study.db");
  auto t = tuner();
  auto ask = [&](const std::vector<sdk::TrialRecord>& h) { return t->ask(h); };
  const std::string owner = this_process_owner();
  const std::string dead = owner.substr(0, owner.find(':')) + ":999999999:1";
  ASSERT_EQ(store.claim(ask, owner).kind, Claim::Kind::Run);
  ASSERT_EQ(store.claim(ask, dead).kind, Claim::Kind::Run);
  const std::string status = format_status(store, "s");
  EXPECT_NE(status.find("running: trial 0 "), std::string::npos) << status;
  EXPECT_NE(status.find("interrupted: trial 1 "), std::string::npos) << status;
  EXPECT_NE(status.find("that worker is gone, and `bachlab tune --resume` trains it again"), std::string::npos)
      << status;
}

TEST_F(StudyTest, OutputsListEveryTrialAndPlotEveryDimension) {
  StudyStore store(folder_ / "study.db");
  auto t = tuner();
  run_worker(store, *t, settings_, folder_,
             [](const TrialRequest& r) -> TrialResult {
               if (r.trial.id == 1) throw Error("boom, \"quoted\"");
               return {objective(r.trial.params), r.trial.epochs};
             },
             quiet("w"));
  write_study_outputs(folder_, store.trials(), space_, settings_);
  std::ifstream csv(folder_ / "trials.csv");
  std::string header, first, second;
  std::getline(csv, header);
  std::getline(csv, first);
  std::getline(csv, second);
  EXPECT_EQ(header, "id,state,f.x1,f.x2,epochs,epochs_used,resume_from,val_loss,seconds,attempts,message");
  EXPECT_EQ(second.substr(0, 9), "1,failed,");
  EXPECT_NE(second.find(",\"boom, \"\"quoted\"\"\""), std::string::npos) << second;
  auto json = nlohmann::json::parse(std::ifstream(folder_ / "trials.json"));
  EXPECT_EQ(json["trials"].size(), 10u);
  EXPECT_EQ(json["direction"], "min");
  EXPECT_TRUE(json["trials"][1]["objective"].is_null());
  EXPECT_EQ(json["trials"][1]["message"], "boom, \"quoted\"");
  for (const char* file : {"best_so_far.png", "objective_f.x1.png", "objective_f.x2.png"})
    EXPECT_GT(fs::file_size(folder_ / file), 1000u) << file;
}

// Issue #21 item 14: the study page (study.html, beside the tables and plots) shows every
// trial with its state, a failed one with its message and an interrupted one as such, the
// best trial, the best-so-far plot, and each parameter's importance and slice.
TEST_F(StudyTest, TheStudyPageShowsEveryTrialTheBestAndEachParameter) {
  StudyStore store(folder_ / "study.db");
  auto t = tuner();
  run_worker(store, *t, settings_, folder_,
             [](const TrialRequest& r) -> TrialResult {
               if (r.trial.id == 1) throw Error("the model does not fit a <16 px> image");
               return {objective(r.trial.params), r.trial.epochs};
             },
             quiet("w"));
  const std::string owner = this_process_owner();
  const std::string dead = owner.substr(0, owner.find(':')) + ":999999999:1";
  ASSERT_EQ(store.claim(
                  [](const std::vector<sdk::TrialRecord>&) {
                    sdk::Proposal p;
                    p.kind = sdk::Proposal::Kind::Run;
                    p.params = {{"f.x1", 1.0}, {"f.x2", 2.0}};
                    p.epochs = 1;
                    return p;
                  },
                  dead)
                .kind,
            Claim::Kind::Run);
  const auto trials = store.trials();
  ASSERT_EQ(trials.size(), 11u);
  EXPECT_FALSE(fs::exists(folder_ / "study.html"));
  write_study_outputs(folder_, trials, space_, settings_);
  const std::string html = read_file(folder_ / "study.html");

  const auto best = best_trial(trials);
  ASSERT_TRUE(best.has_value());
  EXPECT_THAT(html, ::testing::HasSubstr(fmt::format("<b>Best:</b> trial {}, val_loss = {:.4f} with f.x1 = ",
                                                     best->record.id, best->objective)));
  EXPECT_THAT(html, ::testing::HasSubstr(
                        fmt::format("<tr class=\"complete best\"><td>{} (best)</td>", best->record.id)));
  EXPECT_THAT(html, ::testing::HasSubstr("11 trials: 9 complete, 1 failed, 1 interrupted."));
  for (const auto& trial : trials) {
    SCOPED_TRACE("trial " + std::to_string(trial.record.id));
    const std::string state = trial.record.id == 1 ? "failed" : trial.record.id == 10 ? "interrupted" : "complete";
    EXPECT_THAT(html, ::testing::HasSubstr(fmt::format("<tr class=\"{}{}\"><td>{}", state,
                                                       trial.record.id == best->record.id ? " best" : "",
                                                       trial.record.id)));
    if (trial.record.state == sdk::TrialRecord::State::Complete)
      EXPECT_THAT(html, ::testing::HasSubstr(fmt::format("<td>{:.4f}</td>", trial.objective)));
  }
  EXPECT_THAT(html, ::testing::HasSubstr("<td class=\"note\">the model does not fit a &lt;16 px&gt; image</td>"));
  EXPECT_THAT(html, ::testing::HasSubstr("is gone; `bachlab tune --resume` runs it again"));
  // The best so far and one slice per parameter, inlined.
  size_t pictures = 0;
  for (size_t at = html.find("src=\"data:image/png;base64,iVBORw0KGgo"); at != std::string::npos;
       at = html.find("src=\"data:image/png;base64,iVBORw0KGgo", at + 1))
    ++pictures;
  EXPECT_EQ(pictures, 3u);
  EXPECT_THAT(html, ::testing::HasSubstr("<img alt=\"best val_loss so far, by trial\""));
  EXPECT_THAT(html, ::testing::HasSubstr("<img alt=\"val_loss against f.x2\""));
  // The importance table, as parameter_importance() computes it.
  for (const auto& p : parameter_importance(trials, space_, settings_)) {
    ASSERT_TRUE(std::isfinite(p.importance)) << p.name;
    EXPECT_EQ(p.trials, 9) << p.name;
    EXPECT_THAT(html, ::testing::HasSubstr(fmt::format("<tr><td>{}</td><td>9</td><td>{:.2f}</td><td>&rho; = {:+.2f}</td>",
                                                       p.name, p.importance, p.statistic)));
  }
  EXPECT_THAT(html, ::testing::HasSubstr("It is not fANOVA."));
}

// The importance is what the page says: rho^2 of ranks for numbers (the sign saying which
// values scored better), eta^2 for choices, nothing from too few trials or no spread.
TEST_F(StudyTest, ParameterImportanceIsARankCorrelationOrACorrelationRatio) {
  sdk::SearchSpace space;
  space.dimensions = {testing::float_dimension("optimizer.lr", 1e-4, 1e-1, true),
                      testing::choice_dimension("optimizer.plugin", {std::string("adam"), std::string("sgd")}),
                      testing::int_dimension("model.filters", 8, 64, 8),
                      testing::float_dimension("model.dropout", 0, 0.5)};
  std::vector<StoredTrial> trials;
  auto add = [&](double lr, const std::string& plugin, int64_t filters, double loss) {
    StoredTrial t;
    t.record.id = static_cast<int64_t>(trials.size());
    t.record.state = sdk::TrialRecord::State::Complete;
    t.record.params = {{"optimizer.lr", lr}, {"optimizer.plugin", plugin}, {"model.filters", filters}};
    if (trials.size() < 2) t.record.params["model.dropout"] = 0.1 * static_cast<double>(trials.size());
    t.objective = loss;
    t.record.score = -loss;
    trials.push_back(t);
  };
  // The loss rises with lr through every trial (rho = 1), adam's mean 1.5 and sgd's 3.5
  // (eta^2 = 4 / 5), filters constant.
  add(1e-4, "adam", 32, 1);
  add(1e-3, "adam", 32, 2);
  add(1e-2, "sgd", 32, 3);
  add(1e-1, "sgd", 32, 4);
  StoredTrial failed;
  failed.record.id = 4;
  failed.record.state = sdk::TrialRecord::State::Failed;
  failed.record.params = {{"optimizer.lr", 1.0}};
  trials.push_back(failed);
  const auto importance = parameter_importance(trials, space, settings_);  // minimising val_loss
  ASSERT_EQ(importance.size(), 4u);
  EXPECT_EQ(importance[0].name, "optimizer.lr");
  EXPECT_TRUE(importance[0].numeric);
  EXPECT_EQ(importance[0].trials, 4);
  EXPECT_DOUBLE_EQ(importance[0].statistic, 1.0);
  EXPECT_DOUBLE_EQ(importance[0].importance, 1.0);
  EXPECT_EQ(importance[0].better, "smaller");
  EXPECT_EQ(importance[1].name, "optimizer.plugin");
  EXPECT_FALSE(importance[1].numeric);
  EXPECT_DOUBLE_EQ(importance[1].importance, 0.8);
  EXPECT_EQ(importance[1].better, "adam");
  // Constant, and set in two trials only: not measured.
  EXPECT_EQ(importance[2].name, "model.filters");
  EXPECT_TRUE(std::isnan(importance[2].importance));
  EXPECT_EQ(importance[3].name, "model.dropout");
  EXPECT_EQ(importance[3].trials, 2);
  EXPECT_TRUE(std::isnan(importance[3].importance));
  // Maximising, the same trend means smaller values scored better; ties share their rank.
  TuneSettings max = settings_;
  max.maximize = true;
  for (auto& t : trials) t.record.score = t.objective;
  trials[1].objective = 1;  // two trials tie on the objective
  const auto tied = parameter_importance(trials, space, max);
  EXPECT_EQ(tied[1].name, "optimizer.lr");
  EXPECT_NEAR(tied[1].statistic, 0.9486832980505138, 1e-12);  // Pearson of ranks (1,2,3,4) and (1.5,1.5,3,4)
  EXPECT_EQ(tied[1].better, "larger");
  EXPECT_EQ(tied[0].name, "optimizer.plugin");  // eta^2 = 6.25 / 6.75 now
  EXPECT_DOUBLE_EQ(tied[0].importance, 6.25 / 6.75);
  EXPECT_EQ(tied[0].better, "sgd");
}

// The summary of the best trials names every tuned dimension, fixed ones left out and
// inactive conditional ones as "-".
TEST_F(StudyTest, TrialSettingsListEveryTunedDimension) {
  sdk::SearchSpace space;
  space.dimensions = {testing::float_dimension("optimizer.lr", 1e-4, 1e-2)};
  sdk::Dimension filters{"model.filters", sdk::Dimension::Type::Int};
  filters.int_min = 32, filters.int_max = 64;
  space.dimensions.push_back(filters);
  sdk::Dimension fixed{"train.batch_size", sdk::Dimension::Type::Fixed};
  fixed.fixed = int64_t{16};
  space.dimensions.push_back(fixed);
  StoredTrial a, b;
  a.record.id = 7, a.objective = 0.5, a.record.params = {{"optimizer.lr", 0.001}, {"model.filters", int64_t{64}}};
  b.record.id = 3, b.objective = 0.25, b.record.params = {{"optimizer.lr", 0.0003}};
  EXPECT_EQ(format_trial_settings({a, b}, space, settings_),
            "rank  trial  val_loss  optimizer.lr  model.filters\n"
            "   1      7       0.5         0.001             64\n"
            "   2      3      0.25        0.0003              -\n");
}

// ---------------------------------------------------------------------------------------
// The search space in TOML.

std::string read_error(const std::string& toml) {
  Config config = Config::parse(toml, "study.toml");
  read_tune_settings(config);
  read_search_space(config);
  auto problems = config.problems();
  std::string out;
  for (const auto& p : problems) out += (out.empty() ? "" : "\n") + p;
  return out;
}

TEST(SearchSpaceTest, TheStudysSpaceReadsInFileOrderWithConditions) {
  Config config = Config::parse(R"(
[tune]
tuner = "bayesian"
max_trials = 100
epochs = 50

[tune.space.optimizer.plugin]
type = "choice"
values = ["adam", "rmsprop", "sgd"]

[tune.space.model.filters]
type = "int"
min = 32
max = 256
step = 32

[tune.space.optimizer.lr]
type = "float"
min = 1e-4
max = 1e-2
log = true

[tune.space.optimizer.momentum]
type = "float"
min = 0.0
max = 0.9
when = { parent = "optimizer.plugin", values = ["sgd"] }

[tune.space.model.dropout]
type = "fixed"
value = 0.5

[tune.space.optimizer.amsgrad]
type = "bool"
)",
                                "study.toml");
  auto settings = read_tune_settings(config);
  auto space = read_search_space(config);
  config.check();
  EXPECT_EQ(settings.max_trials, 100);
  EXPECT_EQ(settings.epochs, 50);
  EXPECT_TRUE(settings.maximize);
  EXPECT_EQ(settings.objective, "val_accuracy");
  ASSERT_EQ(space.dimensions.size(), 6u);
  std::vector<std::string> names;
  for (const auto& d : space.dimensions) names.push_back(d.name);
  EXPECT_EQ(names, (std::vector<std::string>{"optimizer.plugin", "model.filters", "optimizer.lr", "optimizer.momentum",
                                             "model.dropout", "optimizer.amsgrad"}));
  EXPECT_EQ(space.dimensions[1].int_step, 32);
  EXPECT_TRUE(space.dimensions[2].log);
  EXPECT_EQ(space.dimensions[3].parent, "optimizer.plugin");
  EXPECT_EQ(space.dimensions[3].parent_values, std::vector<sdk::Scalar>{std::string("sgd")});
  EXPECT_EQ(space.dimensions[4].fixed, sdk::Scalar(0.5));
  EXPECT_EQ(space.dimensions[5].type, sdk::Dimension::Type::Bool);
}

TEST(SearchSpaceTest, MistakesAreReportedWithFileLineAndKey) {
  EXPECT_EQ(read_error("[tune.space.model.filters]\ntype = \"int\"\nmin = 256\nmax = 32\n"),
            "study.toml:3: [tune.space.model.filters] min must not exceed max (was min 256, max 32); swap them");
  EXPECT_EQ(read_error("[tune.space.model.kernel_size]\ntype = \"choice\"\nvalues = []\n"),
            "study.toml:3: [tune.space.model.kernel_size] values must not be empty (was []); list the values to "
            "choose from, e.g. values = [3, 5, 11]");
  EXPECT_EQ(read_error("[tune.space.model.kernel_size]\ntype = \"choice\"\nvalues = [3, \"5\"]\n"),
            "study.toml:3: [tune.space.model.kernel_size] values must hold values of one type (found integer 3 and "
            "string \"5\"); write every value as the same type");
  EXPECT_EQ(read_error("[tune.space.optimizer.lr]\ntype = \"float\"\nmin = 0.0\nmax = 0.1\nlog = true\n"),
            "study.toml:3: [tune.space.optimizer.lr] min must be > 0 when log = true (was 0.0); use a positive min "
            "or log = false");
  EXPECT_EQ(read_error("[tune.space.model.filters]\ntype = \"int\"\nmin = 32\nmax = 256\nsteps = 32\n"),
            "study.toml:5: [tune.space.model.filters] unknown key \"steps\"; did you mean \"step\"?");
  EXPECT_EQ(read_error("[tune.space.model.filters]\ntype = \"integer\"\n"),
            "study.toml:2: [tune.space.model.filters] type must be one of \"int\", \"float\", \"choice\", \"bool\", "
            "\"fixed\" (was \"integer\")");
  EXPECT_EQ(read_error("[tune.space.optimizer.momentum]\ntype = \"bool\"\n"
                       "when = { parent = \"optimizer.plugin\", values = [\"sgd\"] }\n"),
            "study.toml:3: [tune.space.optimizer.momentum.when] parent names \"optimizer.plugin\", which is not a "
            "dimension listed before optimizer.momentum; list the parent's [tune.space.*] table first");
  EXPECT_EQ(read_error("[tune.space.epochs]\ntype = \"bool\"\n"),
            "study.toml:2: [tune.space.epochs] type belongs to a dimension named \"epochs\", which addresses no "
            "experiment table; name it [tune.space.<table>.<key>], e.g. [tune.space.model.filters]");
  EXPECT_EQ(read_error("[tune]\nobjective = \"val_acc\"\n[tune.space.model.a]\ntype = \"bool\"\n"),
            "study.toml:2: [tune] objective must be one of \"val_loss\", \"val_accuracy\", \"val_auroc_micro\", "
            "\"val_auroc_macro\", \"train_loss\", \"train_accuracy\", \"train_auroc_micro\", \"train_auroc_macro\" "
            "(was \"val_acc\")");
}

TEST_F(StudyTest, ADamagedTrialRowIsAnErrorNamingTheDatabaseAndTheTrial) {
  settings_.max_trials = 2;
  {
    StudyStore store(folder_ / "study.db");
    auto t = tuner();
    run_worker(store, *t, settings_, folder_,
               [](const TrialRequest& r) { return TrialResult{objective(r.trial.params), 1}; }, quiet("w"));
  }
  auto damage = [&](const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((folder_ / "study.db").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  };
  auto message = [&] {
    try {
      StudyStore store(folder_ / "study.db");
      store.trials();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  const std::string file = (folder_ / "study.db").string();
  damage("UPDATE trials SET params = '{\"f.x1\": 1.5' WHERE id = 1");
  EXPECT_EQ(message().rfind(file + ": trial 1 is damaged in the study database (its params are not JSON: ", 0), 0u)
      << message();
  damage("UPDATE trials SET params = '{\"f.x1\": 1.5}', state = 'paused' WHERE id = 1");
  EXPECT_EQ(message(), file + ": trial 1 is damaged in the study database (its state is \"paused\"; expected running, "
                              "waiting, complete or failed); restore study.db from a copy, or start the study again in a new "
                              "folder");
}

}  // namespace
}  // namespace bachlab::host
