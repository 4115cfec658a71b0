#pragma once
/// \file tuner.h
/// Tuner plugins only propose parameter sets; the host runs the trials and stores the
/// study. A tuner decides from the study's history alone (every trial with its state,
/// params and result), so its state is the history the host stores after every trial:
/// a killed study resumes exactly, and several worker processes can share one study.

#include <bachlab/sdk/params.h>
#include <bachlab/sdk/plugin.h>
#include <bachlab/sdk/search_space.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace bachlab::sdk {

/// One trial of a study as the host stores it.
struct TrialRecord {
  enum class State { Running, Complete, Failed };
  /// 0-based, in the order trials were asked for.
  int64_t id = 0;
  State state = State::Running;
  /// The values proposed for this trial.
  Assignment params;
  /// Epochs the trial was asked to reach (its budget).
  int64_t epochs = 0;
  /// The trial this one continues from (Hyperband promotion), or -1.
  int64_t resume_from = -1;
  /// The objective, already oriented so that larger is better; valid when Complete.
  double score = 0;
};

/// What a tuner answers when asked.
struct Proposal {
  enum class Kind {
    /// Run `params` for `epochs` epochs (continuing trial `resume_from` if >= 0).
    Run,
    /// Nothing to propose until running trials finish (e.g. a Hyperband rung is open).
    Wait,
    /// The study is over.
    Done
  };
  Kind kind = Kind::Done;
  Assignment params;
  int64_t epochs = 0;
  int64_t resume_from = -1;
};

/// Study-wide settings the host passes to a tuner.
struct StudySettings {
  /// Stop proposing after this many trials.
  int64_t max_trials = 10;
  /// Epochs per trial for tuners that do not choose budgets themselves.
  int64_t epochs = 10;
  /// Seed of the study; a tuner must be deterministic given seed and history.
  uint64_t seed = 0;
};

/// One configured tuner.
class Tuner {
 public:
  virtual ~Tuner() = default;
  /// The next proposal given everything that happened so far, `history` ordered by id.
  virtual Proposal ask(const std::vector<TrialRecord>& history) = 0;
};

/// The interface a tuner plugin's factory implements.
class TunerPlugin {
 public:
  virtual ~TunerPlugin() = default;
  /// Builds the tuner for a search space and study settings.
  virtual std::shared_ptr<Tuner> create(const SearchSpace& space, const StudySettings& settings,
                                        Params& params) const = 0;
};

template <>
struct KindInterface<kind_tags::tuner> {
  using type = TunerPlugin;
};

}  // namespace bachlab::sdk
