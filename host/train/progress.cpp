#include "host/train/progress.h"

#include "host/eval/history.h"
#include "host/train/trainer.h"

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
  out_ << fmt::format("\repoch {}/{} [{}{}] {}/{} loss {:.4f} {:.0f}s\x1b[K", b.epoch, trainer.settings().epochs,
                      std::string(filled, '#'), std::string(kWidth - filled, '.'), b.batch + 1, b.batches, b.mean_loss,
                      b.seconds)
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
  note(line);
}

void ProgressOutput::note(const std::string& line) {
  out_ << (interactive_ ? "\r" : "") << line << (interactive_ ? "\x1b[K\n" : "\n") << std::flush;
}

}  // namespace bachlab::host
