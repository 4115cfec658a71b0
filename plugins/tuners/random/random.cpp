// Random search: every trial an independent draw, uniform over each dimension's values
// (int steps honoured, log-uniform where a float asks for it), never a repeat of an
// assignment already in the study. The baseline every other tuner must beat.
#include <bachlab/sdk/tuner.h>
#include <bachlab/sdk/tuning.h>

namespace {

using bachlab::sdk::Proposal;
using bachlab::sdk::TrialRecord;
namespace tuning = bachlab::sdk;

// Draws before giving up on finding an assignment not tried yet; a space this close to
// exhausted is better served by a grid.
constexpr int kMaxDraws = 1000;

class RandomTuner : public bachlab::sdk::Tuner {
 public:
  RandomTuner(bachlab::sdk::SearchSpace space, bachlab::sdk::StudySettings settings)
      : space_(std::move(space)), settings_(settings) {}

  Proposal ask(const std::vector<TrialRecord>& history) override {
    Proposal proposal;
    if (static_cast<int64_t>(history.size()) >= settings_.max_trials) return proposal;
    const auto seen = tuning::seen_keys(history);
    if (static_cast<double>(seen.size()) >= tuning::space_size(space_)) return proposal;
    tuning::Rng rng(settings_.seed, history.size());
    for (int draw = 0; draw < kMaxDraws; ++draw) {
      auto candidate = tuning::sample_assignment(space_, rng);
      if (seen.count(tuning::assignment_key(candidate))) continue;
      proposal.kind = Proposal::Kind::Run;
      proposal.params = std::move(candidate);
      proposal.epochs = settings_.epochs;
      return proposal;
    }
    return proposal;
  }

 private:
  bachlab::sdk::SearchSpace space_;
  bachlab::sdk::StudySettings settings_;
};

class RandomPlugin : public bachlab::sdk::TunerPlugin {
 public:
  std::shared_ptr<bachlab::sdk::Tuner> create(const bachlab::sdk::SearchSpace& space,
                                              const bachlab::sdk::StudySettings& settings,
                                              bachlab::sdk::Params& params) const override {
    params.check();
    return std::make_shared<RandomTuner>(space, settings);
  }
};

}  // namespace

BACHLAB_PLUGIN(tuner, "random", "1.0.0", "Random search: uniform draws (log where asked), no repeats", RandomPlugin)
