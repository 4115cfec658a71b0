#include "host/train/batch_source.h"

namespace bachlab::host {

int64_t WholeImages::start_epoch(torch::Generator& generator) {
  order_ = torch::randperm(split_.size(), generator, torch::kLong);
  return split_.size();
}

Batch WholeImages::batch(int64_t begin, int64_t end) const {
  torch::Tensor rows = order_.slice(0, begin, end);
  return {split_.images.index_select(0, rows), split_.labels.index_select(0, rows), rows};
}

Batch FeatureBatches::batch(int64_t begin, int64_t end) const {
  Batch out = images_.batch(begin, end);
  out.images = features_.index_select(0, out.rows);
  return out;
}

}  // namespace bachlab::host
