#pragma once
// The worker loop of a study: claim a trial from the store, run it, record the result,
// until the tuner says the study is over. What a trial *is* (training an experiment, or a
// test function) is a TrialFunction, so the loop is tested on known functions without
// any training, and `bachlab tune` plugs in training (see trial_training.h).

#include "host/tune/study_store.h"
#include "host/tune/tune_config.h"

#include <bachlab/sdk/tuner.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <string>

namespace bachlab::host {

/// What a trial function is asked to do.
struct TrialRequest {
  /// Id, values, epochs to reach and the trial it continues from (-1: none).
  sdk::TrialRecord trial;
  /// True if a worker died running it before: reuse what the folder already holds.
  bool retry = false;
  /// <study>/trials/<id>: the trial's own folder (created by the loop).
  std::filesystem::path folder;
  /// Folder of the trial it continues from; empty if none.
  std::filesystem::path parent_folder;
};

/// What a trial function answers.
struct TrialResult {
  /// The objective as the metric reads (mean over executions). NaN fails the trial.
  double objective = 0;
  /// Epochs trained by this trial itself.
  int64_t epochs_used = 0;
};

/// Runs one trial; throws (bachlab::Error or any std::exception) to fail it.
using TrialFunction = std::function<TrialResult(const TrialRequest&)>;

/// <study>/trials/<id, 4 digits>.
std::filesystem::path trial_folder(const std::filesystem::path& study, int64_t id);

struct WorkerOptions {
  /// Identifies this worker in the store; default this_process_owner().
  std::string owner;
  /// Pause before asking again when the tuner says Wait. Default: 1 s.
  std::chrono::milliseconds wait{1000};
  /// One line per trial started and finished; null: silent.
  std::ostream* log = nullptr;
  /// Called after each trial is recorded (e.g. to rewrite the study's tables and plots).
  std::function<void()> after_trial;
};

/// What one worker did.
struct WorkerSummary {
  int64_t completed = 0;
  int64_t failed = 0;
};

/// Claims and runs trials until the tuner says Done. A trial that throws or returns a NaN
/// objective is recorded as failed with its message and the loop goes on; after
/// `settings.max_consecutive_failures` failures in a row (counted over every worker of
/// the study) it throws Error saying so, with the last failure's message.
WorkerSummary run_worker(StudyStore& store, sdk::Tuner& tuner, const TuneSettings& settings,
                         const std::filesystem::path& study_folder, const TrialFunction& run,
                         const WorkerOptions& options = {});

/// The message run_worker throws when the study stops on failures.
std::string too_many_failures_message(const std::filesystem::path& study_folder, int64_t count,
                                      const std::string& last_message);

}  // namespace bachlab::host
