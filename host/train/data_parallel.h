#pragma once
// Data-parallel training on c10d, LibTorch's own collectives: a TCPStore for the
// rendezvous and ProcessGroupGloo for the all-reduce, as torch.distributed does with
// backend="gloo". Nothing here is a transport or a scheduler of ours.
//
// Every rank holds the whole model and draws every batch exactly as one process would
// (same shuffle, same augmentations, from the same seed); each computes the forward and
// backward pass of its contiguous share of the batch's rows, the gradients are summed over
// the ranks, and every rank takes the same optimizer step. The loss is scaled so that the
// summed gradient is the one process's gradient of the whole batch: a model without
// dropout or batch norm trains to the same weights on any number of ranks.
// Documented differences (docs/scaling.md): dropout masks are drawn per rank; batch norm
// normalises each rank's share with its own statistics (PyTorch DDP without SyncBatchNorm).
//
// `bachlab run CONFIG --nproc N` starts N processes of this program with BACHLAB_RANK,
// BACHLAB_WORLD_SIZE, BACHLAB_MASTER and BACHLAB_TIMEOUT_S set (launch_ranks); each of them
// joins the group with DataParallel::from_environment(). Rank 0 alone writes the run folder.

#include "host/train/step_strategy.h"

#include <torch/torch.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace c10d {
class Store;
class ProcessGroupGloo;
}  // namespace c10d

namespace bachlab::host {

/// Rows [begin, end) of a batch of `rows` that `rank` of `world` computes: contiguous
/// shares in rank order, sizes differing by at most one.
std::pair<int64_t, int64_t> shard_rows(int64_t rows, int rank, int world);

class DataParallel {
 public:
  /// Joins the group of `world` ranks whose rank 0 listens on `master` ("host:port"), or
  /// starts it as rank 0. Every wait, the rendezvous and each collective, gives up after
  /// `timeout` with an Error naming the rank and what it waited for.
  DataParallel(int rank, int world, const std::string& master, std::chrono::milliseconds timeout);
  ~DataParallel();

  /// The group of this process as `bachlab run --nproc` described it in the environment;
  /// null when BACHLAB_WORLD_SIZE is unset or 1.
  static std::shared_ptr<DataParallel> from_environment();

  int rank() const { return rank_; }
  int world() const { return world_; }
  /// Rank 0: the one that writes checkpoints, history and reports.
  bool leader() const { return rank_ == 0; }

  /// This rank's rows of a batch of `rows` (shard_rows).
  std::pair<int64_t, int64_t> shard(int64_t rows) const { return shard_rows(rows, rank_, world_); }

  /// Sums every tensor over the ranks, in place, in one all-reduce (the tensors are packed
  /// into one float buffer and back).
  void sum(const std::vector<torch::Tensor>& tensors);

  /// Every rank's `local` rows, in rank order, where each rank holds its shard() of a
  /// batch of `rows` rows.
  torch::Tensor gather_rows(const torch::Tensor& local, int64_t rows);

  /// Copies rank 0's values into `tensors` on every rank.
  void broadcast(const std::vector<torch::Tensor>& tensors);

  /// Rank 0 gives `value` for `key`; every rank returns rank 0's value (the others wait
  /// for it, bounded by the timeout).
  std::string share(const std::string& key, const std::string& value);

  /// How many collectives this rank waited for, and the seconds they took in all
  /// (transfer and waiting for slower ranks): the cost of training data-parallel.
  int64_t collectives() const { return collectives_; }
  double collective_seconds() const { return collective_seconds_; }

 private:
  // Waits for a collective, turning a timeout or a lost peer into an Error.
  void finish(const char* what, const std::function<void()>& run);
  // Runs `collective` on the tensors packed into one float buffer, then unpacks it.
  void in_place(const std::vector<torch::Tensor>& tensors, const char* what,
                const std::function<void(std::vector<torch::Tensor>&)>& collective);

  int rank_;
  int world_;
  /// How many values share() gave so far: each call has a key of its own in the store.
  int shares_ = 0;
  int64_t collectives_ = 0;
  double collective_seconds_ = 0;
  std::chrono::milliseconds timeout_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
};

/// The training step of one rank of `parallel` (step_strategy.h): each batch's rows are
/// shared out, each rank differentiates its share of the batch's mean loss, the gradients
/// and the loss are summed over the ranks in one collective, and only rank 0 writes
/// checkpoints.
class DataParallelStep : public StepStrategy {
 public:
  explicit DataParallelStep(std::shared_ptr<DataParallel> parallel) : parallel_(std::move(parallel)) {}
  void start(sdk::Network& model) override;
  std::pair<int64_t, int64_t> shard(int64_t rows) const override { return parallel_->shard(rows); }
  torch::Tensor objective(const torch::Tensor& loss, const torch::Tensor& logits, const torch::Tensor& extra,
                          int64_t local_rows, int64_t batch_rows) const override;
  double reduce(sdk::Network& model, const torch::Tensor& objective) override;
  torch::Tensor gather(const torch::Tensor& local, int64_t rows) override { return parallel_->gather_rows(local, rows); }
  bool writes_checkpoints() const override { return parallel_->leader(); }

 private:
  std::shared_ptr<DataParallel> parallel_;
};

/// What `bachlab run --nproc N [--nnodes M --node-rank R --master HOST:PORT]` asks for.
struct LaunchSettings {
  int nproc = 1;
  int nnodes = 1;
  int node_rank = 0;
  /// Rank 0's address, "host:port"; on one machine 127.0.0.1 and a free port.
  std::string master;
  /// Seconds any rank waits for the others (rendezvous, each collective).
  double timeout_s = 300;
};

/// Starts this machine's `nproc` ranks as copies of this program with `args` (argv without
/// the program), waits for them, and returns the exit status to end with: 0 when every
/// rank succeeded. When a rank fails or is killed, the others are stopped at once (SIGTERM,
/// then SIGKILL after 10 s) and stderr names the rank and how it ended. Rank 0 prints the
/// progress; the other ranks' standard output is discarded, their errors reach stderr.
int launch_ranks(const std::vector<std::string>& args, const LaunchSettings& settings);

}  // namespace bachlab::host
