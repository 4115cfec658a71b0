#include "host/train/history_csv.h"

#include "host/train/trainer.h"
#include "host/util/atomic_file.h"

namespace bachlab::host {

void HistoryCsv::on_epoch_end(Trainer& trainer, const EpochRecord&) {
  write_file_atomic(file_, format_history_csv(trainer.history()));
}

}  // namespace bachlab::host
