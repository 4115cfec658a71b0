#pragma once
// A run's log in an MLflow file store ([experiment] mlflow = "mlruns"), so runs show up in
// `mlflow ui --backend-store-uri mlruns` beside a team's other runs. MLflow's FileStore is
// plain files, written here as MLflow writes them (mlflow/store/tracking/file_store.py):
//
//   <store>/<experiment id>/meta.yaml             the experiment: name, id, artifact location
//   <store>/<experiment id>/<run id>/meta.yaml    the run: status, start and end time, name
//            .../params/<key>                     each value of the resolved config, as text
//            .../metrics/<name>                   one "timestamp_ms value step" line per value
//            .../tags/<name>                      mlflow.runName, mlflow.parentRunId, ...
//
// The experiment is found by name (one MLflow made counts) or made; a run folder records its
// MLflow run in mlflow.json, so a resumed run continues the same MLflow run, and a fold,
// refit or ensemble member (a run folder inside one that has an MLflow run) is its child run
// (tag mlflow.parentRunId). As a training callback it appends each epoch's metrics (the
// columns of history.csv, step = epoch) when the epoch ends; the final figures of every split
// follow (final_test_accuracy, ...). The status is RUNNING while it trains, FINISHED after
// end(FINISHED), and KILLED (a stop request: Ctrl-C, SIGTERM) or FAILED (any other error)
// when the object is destroyed before that, as an exception leaves the run.

#include "host/config/config.h"
#include "host/report/run_report.h"
#include "host/train/experiment.h"
#include "host/train/callback.h"

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

namespace bachlab::host {

class MlflowLog : public TrainingCallback {
 public:
  /// MLflow's RunStatus numbers, as meta.yaml stores them.
  enum class Status { running = 1, finished = 3, failed = 4, killed = 5 };

  /// Starts the MLflow run of `run_dir` in `store` (made, with MLflow's Default experiment,
  /// if it does not exist), under the experiment called `experiment`, and logs `config`'s
  /// settings as its parameters; or, when `run_dir` holds mlflow.json, continues that run
  /// (status RUNNING again). Throws Error naming the store when it cannot be written.
  /// Problems writing later (a full disk) do not stop training: the first is said on
  /// `warnings`, once, and the log stops.
  MlflowLog(const std::filesystem::path& store, const std::filesystem::path& run_dir, const std::string& experiment,
            const Config& config, std::ostream* warnings);
  ~MlflowLog() override;
  MlflowLog(const MlflowLog&) = delete;
  MlflowLog& operator=(const MlflowLog&) = delete;

  const std::string& run_id() const { return run_id_; }
  const std::string& experiment_id() const { return experiment_id_; }
  /// <store>/<experiment id>/<run id>.
  std::filesystem::path run_folder() const;

  /// Appends one value of metric `name` at `step` (MLflow's metric names: letters, digits,
  /// '_', '-', '.', ' ', '/'). Non-finite values are left out (MLflow's charts cannot draw them).
  void log_metric(const std::string& name, double value, int64_t step);
  /// The final figures of every split of `summary` (final_test_accuracy, ...: loss,
  /// accuracy, AUROC micro and macro, F1 macro) at the step of its last epoch.
  void log_summary(const RunSummary& summary);
  /// Sets the run's status and end time; FINISHED is final, the others too until a resume.
  void end(Status status);

  /// The metrics of the epochs the trainer has (after a resume: those its checkpoint
  /// holds, so lines of epochs trained after it are dropped), with their times.
  void on_train_begin(Trainer& trainer) override;
  void on_epoch_end(Trainer& trainer, const EpochRecord& record) override;

 private:
  void write_run_meta(Status status, int64_t end_ms);
  void append_metric(const std::string& name, double value, int64_t time_ms, int64_t step);
  template <typename Write>
  void guarded(const char* what, Write&& write);

  std::filesystem::path store_;
  std::string experiment_id_;
  std::string run_id_;
  std::string run_name_;
  int64_t start_ms_ = 0;
  bool ended_ = false;
  bool broken_ = false;
  std::ostream* warnings_ = nullptr;
};

/// The MLflow log of the run in `run_dir` (after its run.json is written) when `experiment`
/// names a store ([experiment] mlflow); null otherwise, and null with a warning on
/// `warnings` when the store cannot be written (the run trains all the same).
std::shared_ptr<MlflowLog> open_mlflow_log(const ExperimentSettings& experiment, const std::filesystem::path& run_dir,
                                           const Config& config, std::ostream* warnings);

/// The name of mlflow.json in a run folder: the store, experiment and run it logs to.
inline constexpr const char* kMlflowRunFile = "mlflow.json";

}  // namespace bachlab::host
