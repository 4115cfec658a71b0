#include "host/train/progress.h"

#include "host/eval/history.h"
#include "host/train/trainer.h"
#include "host/util/time_text.h"

#include <fmt/format.h>

#include <cmath>
#include <ostream>

namespace bachlab::host {

void ProgressOutput::on_epoch_begin(Trainer&, int64_t, BatchSource&) { last_draw_ = std::chrono::steady_clock::now(); }

void ProgressOutput::on_batch_end(Trainer& trainer, const BatchEnd& b) {
  const auto now = std::chrono::steady_clock::now();
  if (!interactive_ || (now - last_draw_ <= std::chrono::milliseconds(100) && b.batch + 1 != b.batches)) return;
  last_draw_ = now;
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(kWidth * (b.batch + 1) / b.batches);
  // The epoch's batches so far, at their rate, over those left (validation not counted).
  const std::string left =
      b.batch + 1 < b.batches
          ? " ETA " + format_duration(b.seconds / static_cast<double>(b.batch + 1) * static_cast<double>(b.batches - b.batch - 1))
          : "";
  out_ << fmt::format("\repoch {}/{} [{}{}] {}/{} loss {:.4f} {}{}\x1b[K", b.epoch, trainer.settings().epochs,
                      std::string(filled, '#'), std::string(kWidth - filled, '.'), b.batch + 1, b.batches, b.mean_loss,
                      format_duration(b.seconds), left)
       << std::flush;
}

void ProgressOutput::on_epoch_end(Trainer& trainer, const EpochRecord& r) {
  std::string line = fmt::format("epoch {}/{}  loss {:.4f} acc {:.4f} auroc_micro {:.4f}", r.epoch,
                                 trainer.settings().epochs, r.train.loss, r.train.accuracy, r.train.auroc_micro);
  if (!std::isnan(r.val.loss))
    line += fmt::format("  val_loss {:.4f} val_acc {:.4f} val_auroc_micro {:.4f}", r.val.loss, r.val.accuracy,
                        r.val.auroc_micro);
  line += fmt::format("  lr {:.3g}  {:.1f}s", r.lr, r.seconds);
  if (trainer.best_epoch() == r.epoch) line += "  *best*";
  if (trainer.stopped_early()) line += "  (early stop)";
  // The run's time left: the mean epoch so far (this process's and resumed ones alike)
  // times the epochs left; early stopping can only shorten it.
  const int64_t epochs_left = trainer.settings().epochs - r.epoch;
  if (epochs_left > 0 && !trainer.stopped_early()) {
    double seconds = 0;
    for (const auto& record : trainer.history()) seconds += record.seconds;
    line += "  ETA " + format_duration(seconds / static_cast<double>(trainer.history().size()) *
                                       static_cast<double>(epochs_left));
  }
  note(line);
}

void ProgressOutput::note(const std::string& line) {
  out_ << (interactive_ ? "\r" : "") << line << (interactive_ ? "\x1b[K\n" : "\n") << std::flush;
}

}  // namespace bachlab::host
