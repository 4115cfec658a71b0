#include "host/tune/study.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <ostream>
#include <thread>

namespace bachlab::host {

namespace fs = std::filesystem;

fs::path trial_folder(const fs::path& study, int64_t id) { return study / "trials" / fmt::format("{:04d}", id); }

std::string too_many_failures_message(const fs::path& study_folder, int64_t count, const std::string& last_message) {
  return fmt::format(
      "{}: the study stopped: {} trials failed in a row (max_consecutive_failures = {}); the last one failed with: "
      "{}\nFix the cause (or raise [tune] max_consecutive_failures), then continue with `bachlab tune CONFIG "
      "--resume`",
      study_folder.string(), count, count, last_message);
}

namespace {

std::string describe(const sdk::Assignment& params) {
  std::string text;
  for (const auto& [name, value] : params) text += (text.empty() ? "" : ", ") + name + "=" + sdk::to_string(value);
  return text;
}

std::string last_failure(const StudyStore& store) {
  std::string message;
  int64_t order = -1;
  for (const auto& t : store.trials())
    if (t.record.state == sdk::TrialRecord::State::Failed && t.record.id > order) {
      order = t.record.id;
      message = fmt::format("trial {}: {}", t.record.id, t.message);
    }
  return message;
}

}  // namespace

WorkerSummary run_worker(StudyStore& store, sdk::Tuner& tuner, const TuneSettings& settings, const fs::path& study_folder,
                         const TrialFunction& run, const WorkerOptions& options) {
  WorkerSummary summary;
  const std::string owner = options.owner.empty() ? this_process_owner() : options.owner;
  auto ask = [&](const std::vector<sdk::TrialRecord>& history) { return tuner.ask(history); };
  for (;;) {
    const int64_t failures = store.consecutive_failures();
    if (failures >= settings.max_consecutive_failures)
      throw Error(too_many_failures_message(study_folder, failures, last_failure(store)));

    Claim claim = store.claim(ask, owner);
    if (claim.kind == Claim::Kind::Done) return summary;
    if (claim.kind == Claim::Kind::Wait) {
      std::this_thread::sleep_for(options.wait);
      continue;
    }

    TrialRequest request;
    request.trial = claim.trial;
    request.retry = claim.retry;
    request.folder = trial_folder(study_folder, claim.trial.id);
    if (claim.trial.resume_from >= 0) request.parent_folder = trial_folder(study_folder, claim.trial.resume_from);
    if (options.log)
      *options.log << fmt::format("trial {} {}({} {}{}): {}\n", claim.trial.id, claim.retry ? "again " : "",
                                  claim.trial.epochs, claim.trial.epochs == 1 ? "epoch" : "epochs",
                                  claim.trial.resume_from >= 0
                                      ? fmt::format(", continuing trial {}", claim.trial.resume_from)
                                      : "",
                                  describe(claim.trial.params))
                   << std::flush;

    const auto start = std::chrono::steady_clock::now();
    auto seconds = [&] {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    };
    std::string failure;
    TrialResult result;
    try {
      std::error_code ec;
      fs::create_directories(request.folder, ec);
      if (ec)
        throw Error(request.folder.string() + ": cannot create the trial folder (" + ec.message() +
                    "); check that the study folder is writable");
      result = run(request);
      if (!std::isfinite(result.objective))
        failure = fmt::format("the objective {} was {} (the loss diverged; a smaller learning rate usually helps)",
                              settings.objective, result.objective);
    } catch (const std::exception& e) {
      failure = e.what();
    }
    if (failure.empty()) {
      store.complete(claim.trial.id, oriented(settings, result.objective), result.objective, result.epochs_used,
                     seconds());
      ++summary.completed;
      if (options.log)
        *options.log << fmt::format("trial {} complete: {} = {:.4f} ({:.1f} s)\n", claim.trial.id, settings.objective,
                                    result.objective, seconds())
                     << std::flush;
    } else {
      store.fail(claim.trial.id, failure, result.epochs_used, seconds());
      ++summary.failed;
      if (options.log) *options.log << fmt::format("trial {} failed: {}\n", claim.trial.id, failure) << std::flush;
    }
    if (options.after_trial) options.after_trial();
  }
}

}  // namespace bachlab::host
