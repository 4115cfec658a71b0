// @NAME@: a tuner plugin (written by `bachlab new-plugin tuner @NAME@`). Random search:
// each trial an independent draw over the search space (int steps honoured, log-uniform
// where a float dimension asks for it, inactive conditional dimensions left out), for
// max_trials trials of `epochs` epochs each.
// A tuner keeps no state of its own: it decides from the history the host stores, and
// draws trial k from a generator seeded by (seed, k), so a resumed study and several
// workers sharing one study all propose the same trials.
#include <bachlab/sdk/tuner.h>
#include <bachlab/sdk/tuning.h>

#include <memory>
#include <vector>

namespace {

using bachlab::sdk::Proposal;

class RandomSearch : public bachlab::sdk::Tuner {
 public:
  RandomSearch(bachlab::sdk::SearchSpace space, bachlab::sdk::StudySettings settings)
      : space_(std::move(space)), settings_(settings) {}

  Proposal ask(const std::vector<bachlab::sdk::TrialRecord>& history) override {
    Proposal proposal;  // Done unless set below
    if (static_cast<int64_t>(history.size()) >= settings_.max_trials) return proposal;
    bachlab::sdk::Rng rng(settings_.seed, history.size());
    proposal.kind = Proposal::Kind::Run;
    proposal.params = bachlab::sdk::sample_assignment(space_, rng);
    proposal.epochs = settings_.epochs;
    return proposal;
  }

 private:
  bachlab::sdk::SearchSpace space_;
  bachlab::sdk::StudySettings settings_;
};

class Plugin : public bachlab::sdk::TunerPlugin {
 public:
  std::shared_ptr<bachlab::sdk::Tuner> create(const bachlab::sdk::SearchSpace& space,
                                              const bachlab::sdk::StudySettings& settings,
                                              bachlab::sdk::Params& params) const override {
    // No settings of its own yet; check() still rejects any key given in its table.
    params.check();
    return std::make_shared<RandomSearch>(space, settings);
  }
};

}  // namespace

BACHLAB_PLUGIN(tuner, "@NAME@", "0.1.0", "@NAME@: random search over the space", Plugin)
