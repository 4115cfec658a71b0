// Tests of the tuner plugin @NAME@, loaded from its built .so as the host loads it.
#include <bachlab/sdk/param_table.h>
#include <bachlab/sdk/testing.h>
#include <bachlab/sdk/tuner.h>

#include <gtest/gtest.h>

#include <cmath>

namespace {

using bachlab::sdk::Dimension;
using bachlab::sdk::Proposal;
using bachlab::sdk::TrialRecord;

// filters: 8, 16, 24 or 32; lr: log-uniform in [1e-4, 1e-2].
bachlab::sdk::SearchSpace space() {
  Dimension filters;
  filters.name = "model.filters";
  filters.type = Dimension::Type::Int;
  filters.int_min = 8;
  filters.int_max = 32;
  filters.int_step = 8;
  Dimension lr;
  lr.name = "optimizer.lr";
  lr.type = Dimension::Type::Float;
  lr.float_min = 1e-4;
  lr.float_max = 1e-2;
  lr.log = true;
  return {{filters, lr}};
}

std::shared_ptr<bachlab::sdk::Tuner> make(int64_t max_trials, uint64_t seed) {
  const auto& plugin = bachlab::sdk::testing::load_plugin<bachlab::sdk::TunerPlugin>(PLUGIN_FILE, "tuner");
  bachlab::sdk::ParamTable params("[tune.options]");
  return plugin.create(space(), bachlab::sdk::StudySettings{max_trials, 2, seed}, params);
}

// Asks until the tuner says Done, completing each trial with a made-up score.
std::vector<TrialRecord> run_study(bachlab::sdk::Tuner& tuner) {
  std::vector<TrialRecord> history;
  for (Proposal p = tuner.ask(history); p.kind == Proposal::Kind::Run; p = tuner.ask(history)) {
    TrialRecord trial;
    trial.id = static_cast<int64_t>(history.size());
    trial.state = TrialRecord::State::Complete;
    trial.params = p.params;
    trial.epochs = p.epochs;
    trial.score = static_cast<double>(trial.id);
    history.push_back(trial);
  }
  return history;
}

TEST(@NAME@, RegistersUnderItsName) {
  EXPECT_STREQ(bachlab::sdk::testing::load_descriptor(PLUGIN_FILE, "tuner").name, "@NAME@");
}

TEST(@NAME@, ProposesMaxTrialsWithinTheSpace) {
  auto history = run_study(*make(5, 1));
  ASSERT_EQ(history.size(), 5u);
  for (const auto& trial : history) {
    EXPECT_EQ(trial.epochs, 2);
    const int64_t filters = std::get<int64_t>(trial.params.at("model.filters"));
    EXPECT_TRUE(filters >= 8 && filters <= 32 && filters % 8 == 0) << filters;
    const double lr = std::get<double>(trial.params.at("optimizer.lr"));
    EXPECT_TRUE(lr >= 1e-4 && lr <= 1e-2) << lr;
  }
}

TEST(@NAME@, SameSeedSameTrials) {
  auto a = run_study(*make(4, 9)), b = run_study(*make(4, 9));
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].params, b[i].params) << "trial " << i;
}

TEST(@NAME@, RejectsSettingsItDoesNotTake) {
  const auto& plugin = bachlab::sdk::testing::load_plugin<bachlab::sdk::TunerPlugin>(PLUGIN_FILE, "tuner");
  bachlab::sdk::ParamTable params("[tune.options]");
  params.set("initial_points", int64_t{3});
  try {
    plugin.create(space(), bachlab::sdk::StudySettings{}, params);
    FAIL() << "an unknown key was accepted";
  } catch (const bachlab::Error& e) {
    EXPECT_STREQ(e.what(), "[tune.options] unknown key \"initial_points\"; this plugin takes no settings");
  }
}

}  // namespace
