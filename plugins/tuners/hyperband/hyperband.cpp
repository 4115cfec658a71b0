// Hyperband (Li, Jamieson, DeSalvo, Rostamizadeh and Talwalkar, JMLR 18(185), 2018),
// Algorithm 1 with R = max_epochs and eta = factor: s_max = floor(log_eta R) and, for
// s = s_max .. 0, a bracket of n = ceil((s_max+1)/(s+1) * eta^s) random configurations at
// r = R eta^-s epochs, followed by successive halving: rung i keeps the best
// floor(n eta^-i) of rung i-1 and trains them to r eta^i epochs. A promoted trial
// continues from its parent's checkpoint (Proposal::resume_from), so it only trains the
// epochs between two rungs.
//
// The tuner keeps no state: each trial of the history is placed in its bracket and rung
// from its own record (a new configuration joins the first bracket whose first rung is
// not full; a promotion joins the rung after its parent's), so several workers may fill
// several brackets at once and a resumed study continues exactly where it stopped.
// A rung promotes only once every trial of the rung before it has finished (Wait until
// then); a failed trial is never promoted.
#include <bachlab/sdk/tuner.h>
#include <bachlab/sdk/tuning.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace {

using bachlab::sdk::Proposal;
using bachlab::sdk::TrialRecord;
namespace tuning = bachlab::sdk;

struct HyperbandOptions {
  /// R: epochs of the longest trials. Default: the study's epochs per trial.
  int64_t max_epochs = 81;
  /// eta: the fraction 1/eta of each rung is promoted. Default: 3 (the paper's).
  int64_t factor = 3;
  /// Times the whole set of brackets is run. Default: 1.
  int64_t iterations = 1;
};

struct Rung {
  int64_t quota = 0;   // floor(n eta^-i): trials the paper puts in this rung
  int64_t epochs = 0;  // r eta^i: epochs each of them reaches
  std::vector<size_t> members;  // indices into the history
};

struct Bracket {
  int64_t s = 0;
  std::vector<Rung> rungs;
};

int64_t power(int64_t base, int64_t exponent) {
  int64_t p = 1;
  for (int64_t i = 0; i < exponent; ++i) p *= base;
  return p;
}

class HyperbandTuner : public bachlab::sdk::Tuner {
 public:
  HyperbandTuner(bachlab::sdk::SearchSpace space, bachlab::sdk::StudySettings settings, HyperbandOptions options)
      : space_(std::move(space)), settings_(settings), options_(options) {}

  Proposal ask(const std::vector<TrialRecord>& history) override {
    Proposal proposal;
    if (static_cast<int64_t>(history.size()) >= settings_.max_trials) return proposal;
    std::vector<Bracket> brackets = schedule();
    place(history, brackets);

    bool waiting = false;
    // Promotions first, so that brackets finish in the paper's order.
    for (auto& bracket : brackets) {
      for (size_t i = 1; i < bracket.rungs.size(); ++i) {
        const Rung& before = bracket.rungs[i - 1];
        const Rung& rung = bracket.rungs[i];
        const int64_t before_quota = effective_quota(bracket, i - 1, history);
        if (before_quota < 0 || static_cast<int64_t>(before.members.size()) < before_quota) break;
        if (!all_finished(before, history)) {
          waiting = true;
          break;
        }
        const int64_t quota = effective_quota(bracket, i, history);
        if (static_cast<int64_t>(rung.members.size()) >= quota) continue;
        auto ranked = ranking(before, history);
        for (size_t candidate : ranked) {
          const bool promoted = std::any_of(rung.members.begin(), rung.members.end(), [&](size_t m) {
            return history[m].resume_from == history[candidate].id;
          });
          if (promoted) continue;
          proposal.kind = Proposal::Kind::Run;
          proposal.params = history[candidate].params;
          proposal.epochs = rung.epochs;
          proposal.resume_from = history[candidate].id;
          return proposal;
        }
      }
    }
    for (auto& bracket : brackets) {
      Rung& first = bracket.rungs.front();
      if (static_cast<int64_t>(first.members.size()) >= first.quota) continue;
      tuning::Rng rng(settings_.seed, history.size());
      const auto seen = tuning::seen_keys(history);
      const bool exhausted = static_cast<double>(seen.size()) >= tuning::space_size(space_);
      Proposal fresh;
      fresh.kind = Proposal::Kind::Run;
      fresh.epochs = first.epochs;
      fresh.params = tuning::sample_assignment(space_, rng);
      // A small space may hold fewer configurations than a bracket wants; repeats are
      // then allowed rather than ending the study early.
      for (int draw = 0; !exhausted && draw < 1000 && seen.count(tuning::assignment_key(fresh.params)); ++draw)
        fresh.params = tuning::sample_assignment(space_, rng);
      return fresh;
    }
    if (waiting) proposal.kind = Proposal::Kind::Wait;
    return proposal;
  }

  /// The brackets of `iterations` runs of Algorithm 1, in order, with empty rungs.
  std::vector<Bracket> schedule() const {
    const int64_t r_max = options_.max_epochs, eta = options_.factor;
    int64_t s_max = 0;
    while (power(eta, s_max + 1) <= r_max) ++s_max;
    std::vector<Bracket> out;
    for (int64_t iteration = 0; iteration < options_.iterations; ++iteration) {
      for (int64_t s = s_max; s >= 0; --s) {
        Bracket bracket;
        bracket.s = s;
        const int64_t n = ((s_max + 1) * power(eta, s) + s) / (s + 1);  // ceil
        for (int64_t i = 0; i <= s; ++i) {
          Rung rung;
          rung.quota = n / power(eta, i);
          rung.epochs = std::clamp<int64_t>(
              std::llround(static_cast<double>(r_max) * std::pow(static_cast<double>(eta), static_cast<double>(i - s))),
              1, r_max);
          bracket.rungs.push_back(rung);
        }
        out.push_back(std::move(bracket));
      }
    }
    return out;
  }

 private:
  // Places each trial of the history in its bracket and rung.
  static void place(const std::vector<TrialRecord>& history, std::vector<Bracket>& brackets) {
    std::vector<std::pair<size_t, size_t>> where(history.size(), {SIZE_MAX, 0});
    auto index_of = [&](int64_t id) -> size_t {
      for (size_t k = 0; k < history.size(); ++k)
        if (history[k].id == id) return k;
      return SIZE_MAX;
    };
    for (size_t k = 0; k < history.size(); ++k) {
      const TrialRecord& t = history[k];
      if (t.resume_from < 0) {
        for (size_t b = 0; b < brackets.size(); ++b) {
          Rung& first = brackets[b].rungs.front();
          if (static_cast<int64_t>(first.members.size()) < first.quota) {
            first.members.push_back(k);
            where[k] = {b, 0};
            break;
          }
        }
        continue;
      }
      const size_t parent = index_of(t.resume_from);
      if (parent == SIZE_MAX || parent >= k || where[parent].first == SIZE_MAX) continue;
      auto [b, i] = where[parent];
      if (i + 1 >= brackets[b].rungs.size()) continue;
      brackets[b].rungs[i + 1].members.push_back(k);
      where[k] = {b, i + 1};
    }
  }

  static bool all_finished(const Rung& rung, const std::vector<TrialRecord>& history) {
    return std::all_of(rung.members.begin(), rung.members.end(),
                       [&](size_t m) { return history[m].state != TrialRecord::State::Running; });
  }

  // Complete trials of a rung, best first (ties: earlier trial first).
  static std::vector<size_t> ranking(const Rung& rung, const std::vector<TrialRecord>& history) {
    std::vector<size_t> out;
    for (size_t m : rung.members)
      if (history[m].state == TrialRecord::State::Complete && std::isfinite(history[m].score)) out.push_back(m);
    std::stable_sort(out.begin(), out.end(), [&](size_t a, size_t b) { return history[a].score > history[b].score; });
    return out;
  }

  // The paper's floor(n eta^-i), lowered to the number of trials of the rung before that
  // completed (failed ones cannot be promoted); -1 while that is not known yet.
  static int64_t effective_quota(const Bracket& bracket, size_t i, const std::vector<TrialRecord>& history) {
    if (i == 0) return bracket.rungs[0].quota;
    const int64_t before_quota = effective_quota(bracket, i - 1, history);
    const Rung& before = bracket.rungs[i - 1];
    if (before_quota < 0 || static_cast<int64_t>(before.members.size()) < before_quota ||
        !all_finished(before, history))
      return -1;
    return std::min<int64_t>(bracket.rungs[i].quota, static_cast<int64_t>(ranking(before, history).size()));
  }

  bachlab::sdk::SearchSpace space_;
  bachlab::sdk::StudySettings settings_;
  HyperbandOptions options_;
};

class HyperbandPlugin : public bachlab::sdk::TunerPlugin {
 public:
  std::shared_ptr<bachlab::sdk::Tuner> create(const bachlab::sdk::SearchSpace& space,
                                              const bachlab::sdk::StudySettings& settings,
                                              bachlab::sdk::Params& params) const override {
    HyperbandOptions o;
    o.max_epochs = params.get_int("max_epochs", settings.epochs, {1, 1000000});
    params.describe("max_epochs", "", "[tune] epochs");
    o.factor = params.get_int("factor", o.factor, {2, 100});
    o.iterations = params.get_int("iterations", o.iterations, {1, 1000});
    params.check();
    return std::make_shared<HyperbandTuner>(space, settings, o);
  }
};

}  // namespace

BACHLAB_PLUGIN(tuner, "hyperband", "1.0.0",
               "Hyperband (Li et al., 2018): brackets of successive halving, promoted trials resume", HyperbandPlugin)
