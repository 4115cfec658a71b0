#include "host/eval/history.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>

#include <cmath>
#include <limits>

namespace bachlab::host {

double metric_value(const EpochRecord& record, const std::string& metric) {
  const bool val = metric.rfind("val_", 0) == 0;
  const EpochMetrics& m = val ? record.val : record.train;
  const std::string name = metric.substr(metric.find('_') + 1);
  if (name == "loss") return m.loss;
  if (name == "accuracy") return m.accuracy;
  if (name == "auroc_micro") return m.auroc_micro;
  if (name == "auroc_macro") return m.auroc_macro;
  throw Error("unknown metric \"" + metric + "\"; expected one of val_loss, val_accuracy, val_auroc_micro, "
              "val_auroc_macro and the same with train_");
}

bool improves(double value, double reference, bool larger_is_better, double delta) {
  if (!std::isfinite(value)) return false;
  if (std::isnan(reference)) return true;
  return larger_is_better ? value > reference + delta : value < reference - delta;
}

std::string format_history_csv(const std::vector<EpochRecord>& history) {
  auto v = [](double x) { return std::isfinite(x) ? fmt::format("{:.17g}", x) : std::string(); };
  std::string out =
      "epoch,lr,train_loss,train_accuracy,train_auroc_micro,train_auroc_macro,val_loss,val_accuracy,"
      "val_auroc_micro,val_auroc_macro,seconds\n";
  for (const auto& r : history)
    out += fmt::format("{},{},{},{},{},{},{},{},{},{},{:.3f}\n", r.epoch, v(r.lr), v(r.train.loss), v(r.train.accuracy),
                       v(r.train.auroc_micro), v(r.train.auroc_macro), v(r.val.loss), v(r.val.accuracy),
                       v(r.val.auroc_micro), v(r.val.auroc_macro), r.seconds);
  return out;
}

}  // namespace bachlab::host
