// Data-parallel training on c10d Gloo, with real processes on localhost: launch_ranks starts
// this test program again as each rank (the DataParallelRank tests, which run only inside
// a rank), exactly as `bachlab run --nproc` starts bachlab.
//   - two ranks train the weights one process trains (same seed, same global batch);
//   - a rank that is killed makes the launcher stop the others at once;
//   - a rank whose peer is gone without the launcher noticing (another machine) stops
//     with an Error at its next collective instead of waiting for ever.
#include "host/plugins/registry.h"
#include "host/train/data_parallel.h"
#include "host/train/trainer.h"
#include "tests/train/synthetic_tensors.h"

#include <bachlab/sdk/error.h>
#include <bachlab/sdk/param_table.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace bachlab::host {
namespace {

namespace fs = std::filesystem;

// Where the ranks leave what the test checks: one folder per test (ctest runs the tests of
// this file side by side), named to the ranks through the environment launch_ranks passes on.
fs::path shared_folder() {
  if (const char* given = std::getenv("BACHLAB_DP_TEST_FOLDER")) return given;
  return fs::temp_directory_path() /
         ("bachlab_data_parallel_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
}

bool inside_rank() { return std::getenv("BACHLAB_RANK") != nullptr; }

// The tiny test model without dropout (dropout masks are drawn per rank) and Adam: what
// both the ranks and the single process train.
TrainerParts make_parts(PluginRegistry& registry) {
  torch::manual_seed(5);
  sdk::ParamTable model_params("[model]");
  model_params.set("dropout", 0.0);
  TrainerParts p;
  p.model = registry.create_model("tiny_cnn", sdk::ModelSpec{3, 12, 12, 4}, model_params);
  sdk::ParamTable optimizer_params("[optimizer]");
  optimizer_params.set("lr", 0.01);
  p.optimizer = registry.create_optimizer("adam", {{"all", p.model->parameters()}}, optimizer_params);
  return p;
}

TrainSettings settings() {
  TrainSettings s;
  s.epochs = 3;
  // 30 photos in batches of 16: the last batch (14) splits 7 + 7, the first 8 + 8.
  s.batch_size = 16;
  s.threads = 1;
  return s;
}

// Trains and returns the weights, flattened in parameter order; `parallel` may be null.
torch::Tensor train(std::shared_ptr<DataParallel> parallel, std::vector<EpochRecord>* history = nullptr) {
  PluginRegistry registry;
  registry.scan({TRAIN_TEST_PLUGIN_DIR, BACHLAB_TEST_PLUGIN_DIR});
  Trainer trainer(make_parts(registry), settings(), 11);
  if (parallel) trainer.set_data_parallel(parallel);
  trainer.fit(testing::synthetic_tensors(30, 12, 1), testing::synthetic_tensors(8, 12, 2));
  if (history) *history = trainer.history();
  std::vector<torch::Tensor> flat;
  for (const auto& p : trainer.model().parameters()) flat.push_back(p.detach().reshape({-1}));
  return torch::cat(flat);
}

LaunchSettings two_ranks() {
  LaunchSettings s;
  s.nproc = 2;
  s.timeout_s = 20;
  return s;
}

// --- What each rank runs (skipped outside a rank) ---------------------------------------

TEST(DataParallelRank, Train) {
  if (!inside_rank()) GTEST_SKIP() << "runs inside a rank started by DataParallelTest";
  auto parallel = DataParallel::from_environment();
  ASSERT_TRUE(parallel);
  std::vector<EpochRecord> history;
  const torch::Tensor weights = train(parallel, &history);
  if (parallel->leader()) {
    torch::save(weights, (shared_folder() / "weights.pt").string());
    std::ofstream(shared_folder() / "loss.txt") << history.back().train.loss << " " << history.back().train.accuracy;
  }
}

TEST(DataParallelRank, OneIsKilled) {
  if (!inside_rank()) GTEST_SKIP() << "runs inside a rank started by DataParallelTest";
  auto parallel = DataParallel::from_environment();
  // Rank 1 dies as a kill would end it; rank 0 waits at its next collective.
  if (!parallel->leader()) std::raise(SIGKILL);
  parallel->sum({torch::ones({4})});
  ADD_FAILURE() << "the collective returned although rank 1 was dead";
}

TEST(DataParallelRank, PeerLeavesUnnoticed) {
  if (!inside_rank()) GTEST_SKIP() << "runs inside a rank started by DataParallelTest";
  auto parallel = DataParallel::from_environment();
  // Rank 1 ends "successfully", so the launcher stops nobody, as when the peer runs on
  // another machine: rank 0 must find out by itself.
  if (!parallel->leader()) std::_Exit(0);
  const auto start = std::chrono::steady_clock::now();
  try {
    parallel->sum({torch::ones({4})});
    ADD_FAILURE() << "the collective returned although rank 1 had left";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("data-parallel rank 0 of 2: summing the gradients failed"), std::string::npos)
        << e.what();
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 25.0);
    std::ofstream(shared_folder() / "stopped.txt") << e.what();
  }
}

// --- The tests, run by ctest ------------------------------------------------------------

class DataParallelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (inside_rank()) GTEST_SKIP() << "inside a rank";
    fs::remove_all(shared_folder());
    fs::create_directories(shared_folder());
    setenv("BACHLAB_DP_TEST_FOLDER", shared_folder().c_str(), 1);
  }
  void TearDown() override {
    if (inside_rank()) return;
    fs::remove_all(shared_folder());
    unsetenv("BACHLAB_DP_TEST_FOLDER");
  }
};

TEST(DataParallel, SharesAreContiguousAndEven) {
  // Rows of a batch of 7 over 3 ranks: 3, 2, 2, in order, covering every row once.
  EXPECT_EQ(shard_rows(7, 0, 3), (std::pair<int64_t, int64_t>{0, 3}));
  EXPECT_EQ(shard_rows(7, 1, 3), (std::pair<int64_t, int64_t>{3, 5}));
  EXPECT_EQ(shard_rows(7, 2, 3), (std::pair<int64_t, int64_t>{5, 7}));
  EXPECT_EQ(shard_rows(1, 1, 2), (std::pair<int64_t, int64_t>{1, 1}));
}

TEST_F(DataParallelTest, TwoRanksTrainTheWeightsOfOneProcess) {
  ASSERT_EQ(launch_ranks({"--gtest_filter=DataParallelRank.Train"}, two_ranks()), 0);
  torch::Tensor parallel;
  torch::load(parallel, (shared_folder() / "weights.pt").string());
  std::vector<EpochRecord> history;
  const torch::Tensor alone = train(nullptr, &history);
  ASSERT_EQ(parallel.sizes(), alone.sizes());
  // Float sums in another order: equal to rounding, not to the bit.
  EXPECT_TRUE(torch::allclose(parallel, alone, 1e-4, 1e-5))
      << "largest difference " << (parallel - alone).abs().max().item<double>();
  // And the weights did move: the test compares trained models, not two initialisations.
  PluginRegistry registry;
  registry.scan({TRAIN_TEST_PLUGIN_DIR, BACHLAB_TEST_PLUGIN_DIR});
  std::vector<torch::Tensor> initial;
  for (const auto& p : make_parts(registry).model->parameters()) initial.push_back(p.detach().reshape({-1}));
  EXPECT_GT((alone - torch::cat(initial)).abs().max().item<double>(), 1e-3);
  double loss = 0, accuracy = 0;
  std::ifstream(shared_folder() / "loss.txt") >> loss >> accuracy;
  EXPECT_NEAR(loss, history.back().train.loss, 1e-4);
  EXPECT_NEAR(accuracy, history.back().train.accuracy, 1e-9);
}

TEST_F(DataParallelTest, AKilledRankStopsTheOthersAtOnce) {
  const auto start = std::chrono::steady_clock::now();
  ::testing::internal::CaptureStderr();
  const int status = launch_ranks({"--gtest_filter=DataParallelRank.OneIsKilled"}, two_ranks());
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(status, 1);
  EXPECT_NE(err.find("rank 1 of 2 was killed by signal 9"), std::string::npos) << err;
  // Well before the 20 s collective timeout: the launcher stopped rank 0 itself.
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 15.0);
}

TEST_F(DataParallelTest, ARankWhosePeerLeftStopsWithAnError) {
  EXPECT_EQ(launch_ranks({"--gtest_filter=DataParallelRank.PeerLeavesUnnoticed"}, two_ranks()), 0);
  EXPECT_TRUE(fs::exists(shared_folder() / "stopped.txt")) << "rank 0 did not report the lost peer";
}

TEST(DataParallel, LaunchRefusesWhatCannotWork) {
  LaunchSettings s;
  s.nproc = 2;
  s.nnodes = 2;
  try {
    launch_ranks({}, s);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "--nnodes 2 needs --master HOST:PORT, the address of the machine with --node-rank 0");
  }
  // Every --master mistake is one message before any rank starts (issue #22 item 5), not a
  // rendezvous retried until the timeout.
  auto refusal = [&](const std::string& master, int node_rank) {
    s.master = master;
    s.node_rank = node_rank;
    try {
      launch_ranks({}, s);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(refusal("somewhere", 0),
            "--master \"somewhere\": expected HOST:PORT with a port in 1..65535, e.g. 10.0.0.5:29500 (an IPv6 "
            "address in brackets: [fd00::5]:29500)");
  EXPECT_EQ(refusal("::1:29500", 1), refusal("somewhere", 0).replace(10, 9, "::1:29500"));
  // The resolver's reason depends on the machine's DNS ("Name or service not known", or a
  // temporary failure without a network): the message around it does not.
  const std::string unknown = refusal("no.such.host.invalid:29500", 1);
  EXPECT_EQ(unknown.rfind("--master \"no.such.host.invalid:29500\": cannot resolve \"no.such.host.invalid\" (", 0), 0u)
      << unknown;
  EXPECT_NE(unknown.find("); name rank 0's machine by an address or a name this machine resolves"), std::string::npos)
      << unknown;
  // Node 0 serves the meeting point on its port, which must be free.
  const int busy = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ASSERT_EQ(bind(busy, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(listen(busy, 1), 0);
  getsockname(busy, reinterpret_cast<sockaddr*>(&address), &length);
  const std::string taken = "127.0.0.1:" + std::to_string(ntohs(address.sin_port));
  EXPECT_EQ(refusal(taken, 0), "--master \"" + taken + "\": port " + std::to_string(ntohs(address.sin_port)) +
                                   " is in use on this machine, where node 0 (--node-rank 0) serves the meeting "
                                   "point; pick a free port");
  close(busy);
}

}  // namespace
}  // namespace bachlab::host
