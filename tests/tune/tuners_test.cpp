// The tuner plugins on known functions, no training: Bayesian optimisation beats random
// search on Branin; Hyperband lays out the paper's brackets; random search honours steps
// and log scales; no tuner repeats an assignment; proposals depend only on seed and history.
#include "tests/tune/tuner_harness.h"

#include <bachlab/sdk/param_table.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

namespace bachlab::host {
namespace {

using testing::as_number;
using testing::branin;
using testing::make_tuner;
using testing::simulate;

sdk::SearchSpace branin_space() {
  sdk::SearchSpace space;
  space.dimensions = {testing::float_dimension("f.x1", -5, 10), testing::float_dimension("f.x2", 0, 15)};
  return space;
}

double branin_of(const sdk::TrialRecord& t) { return branin(as_number(t.params.at("f.x1")), as_number(t.params.at("f.x2"))); }

// Best (smallest) Branin value found in `evaluations` trials, averaged over seeds 0..9.
double mean_best_branin(const std::string& tuner_name, int64_t evaluations) {
  double sum = 0;
  const int seeds = 10;
  for (int seed = 0; seed < seeds; ++seed) {
    auto tuner = make_tuner(tuner_name, branin_space(), evaluations, static_cast<uint64_t>(seed));
    auto history = simulate(*tuner, [](const sdk::TrialRecord& t) { return -branin_of(t); });
    EXPECT_EQ(static_cast<int64_t>(history.size()), evaluations) << tuner_name << " seed " << seed;
    double best = INFINITY;
    for (const auto& t : history) best = std::min(best, branin_of(t));
    sum += best;
  }
  return sum / seeds;
}

TEST(TunersTest, BayesianBeatsRandomOnBraninOverTenSeeds) {
  const double random = mean_best_branin("random", 30);
  const double bayesian = mean_best_branin("bayesian", 30);
  std::printf("mean best Branin value after 30 evaluations over 10 seeds: random %.4f, bayesian %.4f (optimum 0.3979)\n",
              random, bayesian);
  EXPECT_LT(bayesian, random);
  // Not only better but close to the optimum: the GP has found one of Branin's basins.
  EXPECT_LT(bayesian, 1.0);
}

// Follows a promoted trial back to the configuration it started as.
int64_t root_of(const std::vector<sdk::TrialRecord>& history, int64_t id) {
  while (history[id].resume_from >= 0) id = history[id].resume_from;
  return id;
}

int64_t depth_of(const std::vector<sdk::TrialRecord>& history, int64_t id) {
  int64_t depth = 0;
  for (; history[id].resume_from >= 0; id = history[id].resume_from) ++depth;
  return depth;
}

TEST(TunersTest, HyperbandBracketsMatchThePaperForMaxEpochs81Factor3) {
  sdk::SearchSpace space;
  space.dimensions = {testing::float_dimension("optimizer.lr", 1e-4, 1e-2, true)};
  sdk::ParamTable params("[tune.options]");
  params.set("max_epochs", int64_t{81});
  params.set("factor", int64_t{3});
  auto tuner = make_tuner("hyperband", space, 100000, 7, params);
  // A score that orders configurations the same at every budget, so promotions are checkable.
  auto score = [](const sdk::TrialRecord& t) { return -std::fabs(std::log10(as_number(t.params.at("optimizer.lr"))) + 3); };
  auto history = simulate(*tuner, score);

  // Li et al. (2018), Table 1 (R = 81, eta = 3): per bracket s, (n_i, r_i) of each rung.
  const std::map<int64_t, std::vector<std::pair<int64_t, int64_t>>> paper = {
      {4, {{81, 1}, {27, 3}, {9, 9}, {3, 27}, {1, 81}}},
      {3, {{34, 3}, {11, 9}, {3, 27}, {1, 81}}},
      {2, {{15, 9}, {5, 27}, {1, 81}}},
      {1, {{8, 27}, {2, 81}}},
      {0, {{5, 81}}}};
  // Each bracket starts its configurations at a different budget (r = 81 / 3^s).
  std::map<int64_t, std::map<int64_t, std::pair<int64_t, std::set<int64_t>>>> found;  // s -> rung -> (count, epochs)
  for (const auto& t : history) {
    const int64_t first_budget = history[root_of(history, t.id)].epochs;
    const int64_t s = std::lround(std::log(81.0 / static_cast<double>(first_budget)) / std::log(3.0));
    auto& rung = found[s][depth_of(history, t.id)];
    rung.first += 1;
    rung.second.insert(t.epochs);
  }
  ASSERT_EQ(found.size(), paper.size());
  for (const auto& [s, rungs] : paper) {
    ASSERT_EQ(found[s].size(), rungs.size()) << "bracket s=" << s;
    for (size_t i = 0; i < rungs.size(); ++i) {
      EXPECT_EQ(found[s][static_cast<int64_t>(i)].first, rungs[i].first) << "bracket s=" << s << " rung " << i;
      EXPECT_EQ(found[s][static_cast<int64_t>(i)].second, std::set<int64_t>{rungs[i].second})
          << "bracket s=" << s << " rung " << i;
    }
  }
  EXPECT_EQ(history.size(), 81u + 27 + 9 + 3 + 1 + 34 + 11 + 3 + 1 + 15 + 5 + 1 + 8 + 2 + 5);

  // Successive halving promotes exactly the best of each rung, and a promotion continues
  // its parent (same values, more epochs) instead of starting again.
  std::map<int64_t, std::vector<int64_t>> children;
  for (const auto& t : history)
    if (t.resume_from >= 0) {
      children[t.resume_from].push_back(t.id);
      EXPECT_EQ(t.params, history[t.resume_from].params);
      EXPECT_GT(t.epochs, history[t.resume_from].epochs);
    }
  for (const auto& [parent, kids] : children) EXPECT_EQ(kids.size(), 1u) << "trial " << parent << " promoted twice";
  for (const auto& t : history) {
    if (t.resume_from < 0) continue;
    // Every trial of the parent's rung not promoted scores no better than the promoted one.
    const auto& parent = history[t.resume_from];
    for (const auto& other : history) {
      if (other.id == parent.id || root_of(history, other.id) == root_of(history, parent.id)) continue;
      if (depth_of(history, other.id) != depth_of(history, parent.id) || other.epochs != parent.epochs) continue;
      if (history[root_of(history, other.id)].epochs != history[root_of(history, parent.id)].epochs) continue;
      if (!children.count(other.id)) EXPECT_LE(other.score, parent.score);
    }
  }
}

TEST(TunersTest, HyperbandWaitsForARungAndPromotesOthersMeanwhile) {
  sdk::SearchSpace space;
  space.dimensions = {testing::float_dimension("optimizer.lr", 1e-4, 1e-2, true)};
  sdk::ParamTable params("[tune.options]");
  params.set("max_epochs", int64_t{9});
  auto tuner = make_tuner("hyperband", space, 1000, 3, params);
  // R = 9: brackets s=2 (9 at 1 epoch), s=1 (5 at 3 epochs), s=0 (3 at 9 epochs).
  std::vector<sdk::TrialRecord> history;
  auto append = [&](const sdk::Proposal& p, sdk::TrialRecord::State state) {
    sdk::TrialRecord t;
    t.id = static_cast<int64_t>(history.size());
    t.params = p.params;
    t.epochs = p.epochs;
    t.resume_from = p.resume_from;
    t.state = state;
    t.score = static_cast<double>(t.id);
    history.push_back(t);
  };
  for (int i = 0; i < 14; ++i) {
    auto p = tuner->ask(history);
    ASSERT_EQ(p.kind, sdk::Proposal::Kind::Run) << "trial " << i;
    EXPECT_EQ(p.resume_from, -1) << "trial " << i;
    EXPECT_EQ(p.epochs, i < 9 ? 1 : 3) << "trial " << i;
    // Trial 0 keeps running: its bracket cannot promote.
    append(p, i == 0 ? sdk::TrialRecord::State::Running : sdk::TrialRecord::State::Complete);
  }
  // Bracket s=1 has finished its first rung: its best (trial 13) goes on to 9 epochs
  // before any new configuration starts.
  auto p = tuner->ask(history);
  ASSERT_EQ(p.kind, sdk::Proposal::Kind::Run);
  EXPECT_EQ(p.resume_from, 13);
  EXPECT_EQ(p.epochs, 9);
  append(p, sdk::TrialRecord::State::Complete);
  for (int i = 0; i < 3; ++i) {
    p = tuner->ask(history);
    ASSERT_EQ(p.kind, sdk::Proposal::Kind::Run);
    EXPECT_EQ(p.resume_from, -1);
    EXPECT_EQ(p.epochs, 9);
    append(p, sdk::TrialRecord::State::Complete);
  }
  // Everything else waits for trial 0.
  EXPECT_EQ(tuner->ask(history).kind, sdk::Proposal::Kind::Wait);
  // Once trial 0 fails, bracket s=2 promotes its best three of the eight that completed.
  history[0].state = sdk::TrialRecord::State::Failed;
  for (int64_t expected : {8, 7, 6}) {
    p = tuner->ask(history);
    ASSERT_EQ(p.kind, sdk::Proposal::Kind::Run);
    EXPECT_EQ(p.resume_from, expected);
    EXPECT_EQ(p.epochs, 3);
    append(p, sdk::TrialRecord::State::Running);
  }
  EXPECT_EQ(tuner->ask(history).kind, sdk::Proposal::Kind::Wait);
}

TEST(TunersTest, RandomHonoursStepsAndLogScale) {
  sdk::SearchSpace space;
  space.dimensions = {testing::int_dimension("model.filters", 32, 256, 32),
                      testing::float_dimension("optimizer.lr", 1e-4, 1e-2, true),
                      testing::float_dimension("model.dropout", 0.0, 0.5, false)};
  const int n = 800;
  auto tuner = make_tuner("random", space, n, 2024);
  auto history = simulate(*tuner, [](const sdk::TrialRecord&) { return 0.0; });
  ASSERT_EQ(history.size(), static_cast<size_t>(n));

  std::map<int64_t, int> filters;
  std::vector<int> lr_bins(4, 0), dropout_bins(4, 0);
  for (const auto& t : history) {
    const int64_t f = std::get<int64_t>(t.params.at("model.filters"));
    ASSERT_TRUE(f >= 32 && f <= 256 && f % 32 == 0) << "filters " << f << " is off the step grid";
    ++filters[f];
    const double lr = std::get<double>(t.params.at("optimizer.lr"));
    ASSERT_TRUE(lr >= 1e-4 && lr <= 1e-2) << lr;
    // Log-uniform: each quarter of [-4, -2] in log10 holds a quarter of the draws.
    ++lr_bins[std::min(3, static_cast<int>((std::log10(lr) + 4) / 0.5))];
    ++dropout_bins[std::min(3, static_cast<int>(std::get<double>(t.params.at("model.dropout")) / 0.125))];
  }
  auto chi_square = [](const std::vector<int>& counts) {
    double expected = 0;
    for (int c : counts) expected += c;
    expected /= static_cast<double>(counts.size());
    double chi = 0;
    for (int c : counts) chi += (c - expected) * (c - expected) / expected;
    return chi;
  };
  std::vector<int> filter_counts;
  for (const auto& [value, count] : filters) filter_counts.push_back(count);
  ASSERT_EQ(filter_counts.size(), 8u);  // every value of 32..256 step 32 drawn
  // 0.1% critical values of chi-square: 24.32 for 7 degrees of freedom, 16.27 for 3.
  EXPECT_LT(chi_square(filter_counts), 24.32);
  EXPECT_LT(chi_square(lr_bins), 16.27);
  EXPECT_LT(chi_square(dropout_bins), 16.27);
  // A linear draw would put only ~9% of learning rates below 1e-3; log-uniform puts half.
  EXPECT_NEAR(lr_bins[0] + lr_bins[1], n / 2, n / 10);
}

TEST(TunersTest, NoTunerRepeatsAnAssignmentAndEachStopsWhenTheSpaceIsExhausted) {
  sdk::SearchSpace space;
  space.dimensions = {testing::int_dimension("model.kernel_size", 1, 5, 2),
                      testing::choice_dimension("model.padding", {std::string("same"), std::string("valid")})};
  for (const std::string name : {"random", "bayesian"}) {
    sdk::ParamTable params("[tune.options]");
    if (name == "bayesian") params.set("initial_points", int64_t{2});
    auto tuner = make_tuner(name, space, 50, 11, params);
    auto history = simulate(*tuner, [](const sdk::TrialRecord& t) {
      return as_number(t.params.at("model.kernel_size")) + (std::get<std::string>(t.params.at("model.padding")) == "same");
    });
    std::set<sdk::Assignment> distinct;
    for (const auto& t : history) distinct.insert(t.params);
    EXPECT_EQ(history.size(), 6u) << name;
    EXPECT_EQ(distinct.size(), history.size()) << name << " proposed an assignment twice";
  }
}

TEST(TunersTest, ConditionalDimensionsAreOnlySetWhenTheirParentHasTheValue) {
  sdk::SearchSpace space;
  space.dimensions = {testing::choice_dimension("optimizer.plugin", {std::string("adam"), std::string("sgd")}),
                      testing::float_dimension("optimizer.momentum", 0.0, 0.9)};
  space.dimensions[1].parent = "optimizer.plugin";
  space.dimensions[1].parent_values = {std::string("sgd")};
  for (const std::string name : {"random", "bayesian", "hyperband"}) {
    auto tuner = make_tuner(name, space, 40, 5);
    auto history = simulate(*tuner, [](const sdk::TrialRecord& t) { return t.params.count("optimizer.momentum") ? 1.0 : 0.0; }, 40);
    ASSERT_FALSE(history.empty());
    for (const auto& t : history) {
      const bool sgd = std::get<std::string>(t.params.at("optimizer.plugin")) == "sgd";
      EXPECT_EQ(t.params.count("optimizer.momentum"), sgd ? 1u : 0u) << name << " trial " << t.id;
    }
  }
}

TEST(TunersTest, AProposalDependsOnlyOnSeedAndHistory) {
  for (const std::string name : {"random", "bayesian", "hyperband"}) {
    auto a = make_tuner(name, branin_space(), 20, 99);
    auto history = simulate(*a, [](const sdk::TrialRecord& t) { return -branin_of(t); }, 12);
    // A fresh tuner (a resumed study, another worker) given the same history agrees.
    auto b = make_tuner(name, branin_space(), 20, 99);
    auto pa = a->ask(history), pb = b->ask(history);
    EXPECT_EQ(pa.params, pb.params) << name;
    EXPECT_EQ(pa.epochs, pb.epochs) << name;
    EXPECT_EQ(pa.resume_from, pb.resume_from) << name;
    auto c = make_tuner(name, branin_space(), 20, 100);
    EXPECT_NE(c->ask({}).params, a->ask({}).params) << name << ": the seed must matter";
  }
}

TEST(TunersTest, BayesianSettingsAreValidated) {
  sdk::ParamTable params("[tune.options]");
  params.set("acquisition", std::string("pi"), sdk::Origin{"study.toml", 7});
  params.set("restart", int64_t{3}, sdk::Origin{"study.toml", 8});
  try {
    make_tuner("bayesian", branin_space(), 10, 0, params);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "study.toml:7: [tune.options] acquisition must be one of \"ei\", \"ucb\" (was \"pi\"); did you mean \"ei\"?\n"
              "study.toml:8: [tune.options] unknown key \"restart\"; did you mean \"restarts\"?");
  }
}

}  // namespace
}  // namespace bachlab::host
