#pragma once
// What training records per epoch, and its text in history.csv (written by the run
// report at the end, and after every epoch by host/train/history_csv.h).

#include <cstdint>
#include <string>
#include <vector>

namespace bachlab::host {

/// The four numbers recorded per split and epoch.
struct EpochMetrics {
  double loss = 0;
  double accuracy = 0;
  double auroc_micro = 0;
  double auroc_macro = 0;
};

/// One line of history.csv.
struct EpochRecord {
  /// 1-based.
  int64_t epoch = 0;
  /// Learning rate of the first parameter group during this epoch.
  double lr = 0;
  /// Running metrics over the epoch's training batches, in training mode (dropout on),
  /// as Keras reports them.
  EpochMetrics train;
  /// Metrics on the validation split after the epoch, in evaluation mode; NaN if empty.
  EpochMetrics val;
  /// Wall-clock seconds of the epoch (not part of the reproducible numbers).
  double seconds = 0;
};

/// The value of a monitorable metric ("val_loss", ...) in a record.
double metric_value(const EpochRecord& record, const std::string& metric);

/// True if `value` beats `reference` by more than `delta` in the metric's direction; any
/// finite value beats a NaN reference (nothing seen yet).
bool improves(double value, double reference, bool larger_is_better, double delta = 0.0);

/// history.csv: epoch,lr,train_loss,train_accuracy,train_auroc_micro,train_auroc_macro,
/// val_loss,val_accuracy,val_auroc_micro,val_auroc_macro,seconds (NaN as an empty cell).
std::string format_history_csv(const std::vector<EpochRecord>& history);

}  // namespace bachlab::host
