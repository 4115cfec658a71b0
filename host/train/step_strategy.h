#pragma once
// How one optimizer step is shared between processes, chosen once per Trainer (Lightning's
// Strategy): the training step asks it which rows of the batch this process computes, what
// to differentiate, how to make the gradients the whole batch's, and how to put the batch's
// probabilities back together. This class itself is the single process, which computes
// everything; DataParallelStep (data_parallel.h) shares the rows over c10d ranks. The step
// itself has no branch for either.

#include <torch/torch.h>

#include <cstdint>
#include <utility>

namespace bachlab::sdk {
class Network;
}

namespace bachlab::host {

class StepStrategy {
 public:
  virtual ~StepStrategy() = default;
  /// Before the first epoch: every process starts from the same weights.
  virtual void start(sdk::Network& model) {}
  /// The rows [begin, end) of a batch of `rows` that this process computes.
  virtual std::pair<int64_t, int64_t> shard(int64_t rows) const { return {0, rows}; }
  /// What this process differentiates, from the mean loss of its rows (`local_rows` of the
  /// batch's `batch_rows`), its logits and the model's regularization term (may be undefined).
  virtual torch::Tensor objective(const torch::Tensor& loss, const torch::Tensor& logits, const torch::Tensor& extra,
                                  int64_t local_rows, int64_t batch_rows) const {
    return extra.defined() ? loss + extra : loss;
  }
  /// After backward: makes the gradients of `model` the whole batch's; returns the batch's
  /// loss (the objective summed over the processes).
  virtual double reduce(sdk::Network& model, const torch::Tensor& objective) { return objective.item<double>(); }
  /// The whole batch's rows of `local` (this process's rows, in shard order).
  virtual torch::Tensor gather(const torch::Tensor& local, int64_t rows) { return local; }
  /// Whether this process writes checkpoints (one process of a group does).
  virtual bool writes_checkpoints() const { return true; }
};

}  // namespace bachlab::host
