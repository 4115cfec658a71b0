// The trainer on tiny synthetic tensors with a test-only model plugin: it learns, it is
// deterministic, a run interrupted anywhere resumes to bit-identical numbers, early
// stopping and every schedule act as documented.
#include "host/plugins/registry.h"
#include "host/train/model_state.h"
#include "host/train/trainer.h"
#include "tests/train/batch_hook.h"
#include "tests/train/synthetic_tensors.h"

#include <ATen/autocast_mode.h>
#include <bachlab/sdk/param_table.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <regex>
#include <thread>

#include <unistd.h>

namespace bachlab::host {
namespace {

namespace fs = std::filesystem;

struct Interrupted {};

class TrainerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    registry_ = new PluginRegistry();
    registry_->scan({TRAIN_TEST_PLUGIN_DIR, BACHLAB_TEST_PLUGIN_DIR});
  }
  static void TearDownTestSuite() { delete registry_; }

  void SetUp() override {
    folder_ = fs::temp_directory_path() /
              ("bachlab_trainer_test_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(folder_);
    fs::create_directories(folder_);
    train_ = testing::synthetic_tensors(24, 12, 1);
    val_ = testing::synthetic_tensors(8, 12, 2);
    test_ = testing::synthetic_tensors(10, 12, 3);
  }
  void TearDown() override { fs::remove_all(folder_); }

  // What plan_experiment does for a real config: seed, build the model, then the optimizer.
  TrainerParts parts(uint64_t seed, double lr, double dropout = 0.25) {
    torch::manual_seed(seed);
    sdk::ParamTable model_params("[model]");
    model_params.set("dropout", dropout);
    sdk::ModelSpec spec{3, 12, 12, 4};
    TrainerParts p;
    p.model = registry_->create_model("tiny_cnn", spec, model_params);
    sdk::ParamTable optimizer_params("[optimizer]");
    optimizer_params.set("lr", lr);
    p.optimizer = registry_->create_optimizer("adam", {{"all", p.model->parameters()}}, optimizer_params);
    return p;
  }

  TrainSettings settings(int64_t epochs) {
    TrainSettings s;
    s.epochs = epochs;
    s.batch_size = 16;
    s.threads = 1;
    return s;
  }

  static PluginRegistry* registry_;
  fs::path folder_;
  TensorSplit train_, val_, test_;
};

PluginRegistry* TrainerTest::registry_ = nullptr;

void expect_same_history(const std::vector<EpochRecord>& a, const std::vector<EpochRecord>& b) {
  ASSERT_EQ(a.size(), b.size());
  auto same = [](double x, double y) { return (std::isnan(x) && std::isnan(y)) || x == y; };
  for (size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE("epoch " + std::to_string(i + 1));
    EXPECT_EQ(a[i].epoch, b[i].epoch);
    EXPECT_EQ(a[i].lr, b[i].lr);
    EXPECT_TRUE(same(a[i].train.loss, b[i].train.loss)) << a[i].train.loss << " vs " << b[i].train.loss;
    EXPECT_TRUE(same(a[i].train.accuracy, b[i].train.accuracy));
    EXPECT_TRUE(same(a[i].train.auroc_micro, b[i].train.auroc_micro));
    EXPECT_TRUE(same(a[i].val.loss, b[i].val.loss)) << a[i].val.loss << " vs " << b[i].val.loss;
    EXPECT_TRUE(same(a[i].val.accuracy, b[i].val.accuracy));
    EXPECT_TRUE(same(a[i].val.auroc_macro, b[i].val.auroc_macro));
  }
}

TEST_F(TrainerTest, LearnsBeyondChanceOnHeldOutData) {
  Trainer untrained(parts(7, 0.01), settings(1), 7);
  const double before = accuracy(untrained.predict(test_).probabilities, test_.labels);

  Trainer trainer(parts(7, 0.01), settings(15), 7);
  trainer.fit(train_, val_);
  const double after = accuracy(trainer.predict(test_).probabilities, test_.labels);
  // Four balanced classes: chance is 0.25.
  EXPECT_GE(after, 0.6) << "untrained: " << before;
  EXPECT_LT(before, 0.45) << "the task must not be solvable without training";
}

TEST_F(TrainerTest, SameSeedSameNumbers) {
  Trainer a(parts(11, 0.01), settings(3), 11);
  Trainer b(parts(11, 0.01), settings(3), 11);
  auto history_a = a.fit(train_, val_).history;
  auto history_b = b.fit(train_, val_).history;
  expect_same_history(history_a, history_b);
  EXPECT_TRUE(torch::equal(a.predict(test_).probabilities, b.predict(test_).probabilities));

  Trainer c(parts(12, 0.01), settings(3), 12);
  EXPECT_NE(c.fit(train_, val_).history.back().train.loss, history_a.back().train.loss);
}

TEST_F(TrainerTest, ResumeAfterAnInterruptionAnywhereEqualsAnUninterruptedRun) {
  TrainSettings s = settings(5);
  s.schedule.type = ScheduleType::plateau;  // its state must survive too
  s.schedule.patience = 1;
  s.schedule.factor = 0.5;
  s.schedule.monitor = "val_accuracy";
  s.early_stopping.patience = 10;

  Trainer reference(parts(5, 0.01), s, 5);
  reference.set_checkpoint_dir(folder_ / "reference");
  auto expected = reference.fit(train_, val_);
  const torch::Tensor expected_test = reference.predict(test_).probabilities;

  // (epoch, batch) where the "kill" happens: first batch, mid-epoch, after the last batch.
  const std::vector<std::pair<int64_t, int64_t>> kills = {{1, 0}, {3, 2}, {4, 5}};
  for (auto [kill_epoch, kill_batch] : kills) {
    SCOPED_TRACE("killed at epoch " + std::to_string(kill_epoch) + " batch " + std::to_string(kill_batch));
    const fs::path dir = folder_ / ("run_" + std::to_string(kill_epoch) + "_" + std::to_string(kill_batch));
    {
      Trainer first(parts(5, 0.01), s, 5);
      first.set_checkpoint_dir(dir);
      testing::add_batch_hook(first, [&](int64_t epoch, int64_t batch) {
        if (epoch == kill_epoch && batch == kill_batch) throw Interrupted{};
      });
      EXPECT_THROW(first.fit(train_, val_), Interrupted);
    }
    // A kill during a checkpoint write leaves a partial temp file; it must be ignored.
    std::ofstream(dir / "last.pt.tmp") << "partial";

    // A new process: the model is built from the seed again, then the checkpoint decides.
    Trainer second(parts(5, 0.01), s, 5);
    second.set_checkpoint_dir(dir);
    EXPECT_EQ(second.resume(), kill_epoch > 1);
    EXPECT_EQ(second.epochs_done(), kill_epoch - 1);
    auto resumed = second.fit(train_, val_);
    expect_same_history(resumed.history, expected.history);
    EXPECT_EQ(resumed.best_epoch, expected.best_epoch);
    EXPECT_TRUE(torch::equal(second.predict(test_).probabilities, expected_test));
  }
}

TEST_F(TrainerTest, ResumeRejectsACheckpointOfAnotherModel) {
  Trainer first(parts(5, 0.01), settings(1), 5);
  first.set_checkpoint_dir(folder_);
  first.fit(train_, val_);

  torch::manual_seed(5);
  sdk::ParamTable model_params("[model]");
  model_params.set("filters", int64_t{4});
  TrainerParts other;
  other.model = registry_->create_model("tiny_cnn", sdk::ModelSpec{3, 12, 12, 4}, model_params);
  sdk::ParamTable optimizer_params("[optimizer]");
  other.optimizer = registry_->create_optimizer("adam", {{"all", other.model->parameters()}}, optimizer_params);
  Trainer second(other, settings(2), 5);
  second.set_checkpoint_dir(folder_);
  try {
    second.resume();
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              (folder_ / "best.pt").string() +
                  ": tensor \"conv.weight\" has shape [8, 3, 3, 3] in the checkpoint but [4, 3, 3, 3] in the model; "
                  "the checkpoint belongs to a different model or config. Resume with the run folder that wrote "
                  "it, or start a new run");
  }
}

TEST_F(TrainerTest, EarlyStoppingStopsAfterPatienceEpochsWithoutImprovement) {
  // A vanishing lr and no dropout: the training loss cannot improve by min_delta after epoch 1.
  TrainSettings s = settings(10);
  s.early_stopping.monitor = "train_loss";
  s.early_stopping.patience = 2;
  s.early_stopping.min_delta = 1e-3;
  Trainer trainer(parts(3, 1e-12, 0.0), s, 3);
  auto outcome = trainer.fit(train_, val_);
  EXPECT_TRUE(outcome.stopped_early);
  EXPECT_EQ(outcome.stop_reason, "early stopping: train_loss did not improve by more than 0.001 for 2 epochs");
  EXPECT_EQ(outcome.history.size(), 3u);

  s.early_stopping.patience = 0;  // off
  Trainer never(parts(3, 1e-12, 0.0), s, 3);
  auto full = never.fit(train_, val_);
  EXPECT_FALSE(full.stopped_early);
  EXPECT_EQ(full.history.size(), 10u);
}

std::vector<double> learning_rates(const TrainOutcome& outcome) {
  std::vector<double> out;
  for (const auto& r : outcome.history) out.push_back(r.lr);
  return out;
}

TEST_F(TrainerTest, StepScheduleMultipliesByGammaEveryStepSizeEpochs) {
  TrainSettings s = settings(5);
  s.schedule.type = ScheduleType::step;
  s.schedule.step_size = 2;
  s.schedule.gamma = 0.5;
  Trainer trainer(parts(3, 0.008), s, 3);
  auto lrs = learning_rates(trainer.fit(train_, {}));
  std::vector<double> expected = {0.008, 0.008, 0.004, 0.004, 0.002};
  ASSERT_EQ(lrs.size(), expected.size());
  for (size_t i = 0; i < lrs.size(); ++i) EXPECT_DOUBLE_EQ(lrs[i], expected[i]) << "epoch " << i + 1;
}

TEST_F(TrainerTest, CosineScheduleFollowsHalfACosineDownToMinLr) {
  TrainSettings s = settings(4);
  s.schedule.type = ScheduleType::cosine;
  s.schedule.min_lr = 0.001;
  Trainer trainer(parts(3, 0.009), s, 3);
  auto lrs = learning_rates(trainer.fit(train_, {}));
  ASSERT_EQ(lrs.size(), 4u);
  for (int e = 0; e < 4; ++e)
    EXPECT_DOUBLE_EQ(lrs[e], 0.001 + 0.008 * 0.5 * (1 + std::cos(M_PI * e / 4.0))) << "epoch " << e + 1;
}

TEST_F(TrainerTest, PlateauScheduleDropsAfterPatienceEpochsWithoutImprovement) {
  // Without a validation split val_loss is NaN, which never counts as an improvement.
  TrainSettings s = settings(6);
  s.schedule.type = ScheduleType::plateau;
  s.schedule.patience = 2;
  s.schedule.factor = 0.5;
  s.schedule.min_lr = 0.0015;
  Trainer trainer(parts(3, 0.008), s, 3);
  auto lrs = learning_rates(trainer.fit(train_, {}));
  std::vector<double> expected = {0.008, 0.008, 0.004, 0.004, 0.002, 0.002};
  ASSERT_EQ(lrs.size(), expected.size());
  for (size_t i = 0; i < lrs.size(); ++i) EXPECT_DOUBLE_EQ(lrs[i], expected[i]) << "epoch " << i + 1;

  s.epochs = 8;  // 0.001 would be next, but min_lr holds it at 0.0015
  Trainer floored(parts(3, 0.008), s, 3);
  EXPECT_DOUBLE_EQ(learning_rates(floored.fit(train_, {})).back(), 0.0015);
}

// Keeps a copy of the trained weights after every epoch.
class WeightsPerEpoch : public TrainingCallback {
 public:
  void on_epoch_end(Trainer& trainer, const EpochRecord&) override {
    epochs.push_back(clone_state(trained_state(trainer.model())));
  }
  std::vector<NamedTensors> epochs;
};

bool same_weights(const NamedTensors& a, const NamedTensors& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].first != b[i].first || !torch::equal(a[i].second, b[i].second)) return false;
  return true;
}

TEST_F(TrainerTest, RestoreBestLeavesTheBestEpochsWeights) {
  TrainSettings s = settings(8);
  s.early_stopping.monitor = "val_accuracy";
  Trainer trainer(parts(9, 0.05), s, 9);
  auto weights = std::make_shared<WeightsPerEpoch>();
  trainer.add_callback(weights);
  auto outcome = trainer.fit(train_, val_);
  ASSERT_GE(outcome.best_epoch, 1);
  // Otherwise a trainer that never restores would leave the right weights too.
  ASSERT_LT(outcome.best_epoch, 8) << "the test needs a best epoch before the last";
  EXPECT_EQ(outcome.best_value, outcome.history[outcome.best_epoch - 1].val.accuracy);
  const NamedTensors after = trained_state(trainer.model());
  EXPECT_TRUE(same_weights(after, weights->epochs[outcome.best_epoch - 1]));
  EXPECT_FALSE(same_weights(after, weights->epochs.back()));
}

// A callback of its own: asks the trainer to stop after epoch `stop_at`, and counts the
// epochs it saw, a count a resumed run must continue.
class StopAt : public TrainingCallback {
 public:
  explicit StopAt(int64_t stop_at) : stop_at_(stop_at) {}
  std::string state_key() const override { return "stop_at"; }
  void on_epoch_end(Trainer& trainer, const EpochRecord& record) override {
    ++epochs_seen;
    if (record.epoch == stop_at_) trainer.request_stop("stop_at asked at epoch " + std::to_string(record.epoch));
  }
  void save_state(nlohmann::json& state) const override { state["epochs_seen"] = epochs_seen; }
  void load_state(const nlohmann::json& state) override { epochs_seen = state.at("epochs_seen").get<int64_t>(); }

  int64_t epochs_seen = 0;

 private:
  int64_t stop_at_;
};

TEST_F(TrainerTest, ACallbackOfItsOwnStopsTrainingAndItsStateSurvivesAResume) {
  {
    Trainer trainer(parts(5, 0.01), settings(5), 5);
    // Added after the checkpoints: they are written after every callback all the same.
    trainer.set_checkpoint_dir(folder_);
    auto stop = std::make_shared<StopAt>(2);
    trainer.add_callback(stop);
    const TrainOutcome outcome = trainer.fit(train_, val_);
    EXPECT_EQ(outcome.history.size(), 2u);
    EXPECT_TRUE(outcome.stopped_early);
    EXPECT_EQ(outcome.stop_reason, "stop_at asked at epoch 2");
    EXPECT_EQ(trainer.state().at("callbacks").at("stop_at"), nlohmann::json({{"epochs_seen", 2}}));
    EXPECT_THROW(trainer.add_callback(std::make_shared<StopAt>(3)), std::invalid_argument);
  }
  Trainer resumed(parts(5, 0.01), settings(5), 5);
  auto stop = std::make_shared<StopAt>(2);
  resumed.add_callback(stop);
  resumed.set_checkpoint_dir(folder_);
  ASSERT_TRUE(resumed.resume());
  EXPECT_EQ(stop->epochs_seen, 2);
  EXPECT_EQ(resumed.stop_reason(), "stop_at asked at epoch 2");
  // The stop holds: no epoch is trained after it.
  const TrainOutcome outcome = resumed.fit(train_, val_);
  EXPECT_EQ(outcome.history.size(), 2u);
  EXPECT_EQ(stop->epochs_seen, 2);
}

TEST_F(TrainerTest, TheFlatStateOfEarlierCheckpointsStillResumes) {
  TrainSettings s = settings(3);
  s.schedule.type = ScheduleType::plateau;
  s.schedule.patience = 1;
  s.schedule.monitor = "val_accuracy";
  s.early_stopping.patience = 5;
  Trainer trainer(parts(5, 0.01), s, 5);
  trainer.fit(train_, val_);
  const nlohmann::json state = trainer.state();
  // The layout checkpoints had before callbacks had keys: every key side by side.
  nlohmann::json flat = {{"epochs_done", state.at("epochs_done")}, {"history", state.at("history")}};
  flat.update(state.at("callbacks").at("early_stopping"));
  flat.update(state.at("callbacks").at("lr_schedule"));
  flat["stopped_early"] = false;
  ASSERT_EQ(flat.size(), 10u) << flat.dump();

  Trainer old(parts(5, 0.01), s, 5);
  old.load_state(flat);
  EXPECT_EQ(old.state(), state);
  EXPECT_FALSE(old.stopped_early());

  flat["stopped_early"] = true;
  TrainSettings more = s;
  more.epochs = 5;
  Trainer stopped(parts(5, 0.01), more, 5);
  stopped.load_state(flat);
  EXPECT_EQ(stopped.stop_reason(), "early stopping: val_loss did not improve by more than 0 for 5 epochs");
  EXPECT_EQ(stopped.fit(train_, val_).history.size(), 3u);
}

TEST_F(TrainerTest, ProgressIsOnePlainLinePerEpochWhenNotATerminal) {
  std::ostringstream out;
  Trainer trainer(parts(3, 0.01), settings(2), 3);
  trainer.set_progress(&out, false);
  trainer.fit(train_, {});
  const std::string text = out.str();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2);
  EXPECT_EQ(text.find('\r'), std::string::npos);
  EXPECT_EQ(text.rfind("epoch 1/2  loss ", 0), 0u) << text;
  // Each line but the last says how long the rest of the run should take.
  const std::string first = text.substr(0, text.find('\n'));
  EXPECT_TRUE(std::regex_search(first, std::regex("  ETA [0-9.]+s$"))) << text;
  EXPECT_EQ(text.substr(first.size() + 1).find("ETA"), std::string::npos) << text;
}

// A terminal gets the epoch's bar, redrawn in place, with the epoch's time left.
TEST_F(TrainerTest, ATerminalGetsABarWithTheEpochsTimeLeft) {
  std::ostringstream out;
  TrainSettings s = settings(1);
  s.batch_size = 2;
  Trainer trainer(parts(3, 0.01), s, 3);
  trainer.set_progress(&out, true);
  // The bar is redrawn at most every 100 ms: the second batch takes longer than that.
  struct SlowSecondBatch : TrainingCallback {
    void on_batch_begin(Trainer&, const BatchBegin& batch) override {
      if (batch.batch == 1) std::this_thread::sleep_for(std::chrono::milliseconds(150));
    }
  };
  trainer.add_callback(std::make_shared<SlowSecondBatch>());
  trainer.fit(train_, {});
  const std::string text = out.str();
  EXPECT_TRUE(std::regex_search(text, std::regex("\\repoch 1/1 \\[#*\\.+\\] 2/[0-9]+ loss [0-9.]+ [0-9.]+s ETA [0-9.]+s")))
      << text;
}

// The message of the Error `f` throws; fails the test if it throws none.
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an Error";
  return "";
}

TEST_F(TrainerTest, ADivergingRunStopsAtOnceNamingEpochBatchAndTheLearningRate) {
  // Weights that are already NaN make the very first loss NaN: what lr = 10 does after a
  // few steps, without depending on how fast a given optimizer blows up.
  TrainerParts p = parts(5, 0.01);
  {
    torch::NoGradGuard no_grad;
    p.model->parameters().front().fill_(std::numeric_limits<float>::quiet_NaN());
  }
  Trainer trainer(p, settings(3), 5);
  trainer.set_checkpoint_dir(folder_);
  const std::string message = error_of([&] { trainer.fit(train_, val_); });
  EXPECT_EQ(message,
            "training diverged in epoch 1, batch 1 of 6: the loss is nan. The likely cause is a learning rate too "
            "high for this model and optimizer (lr 0.01); lower [optimizer] lr, e.g. tenfold");
  EXPECT_FALSE(fs::exists(folder_ / "last.pt")) << "nothing of a diverged epoch is saved";
}

TEST_F(TrainerTest, NonFiniteInputsAreBlamedOnTheAugmentationsNotTheLearningRate) {
  TensorSplit bad{train_.images.to(torch::kFloat32).div(255.0), train_.labels};
  bad.images[3][0][0][0] = std::numeric_limits<float>::quiet_NaN();
  Trainer trainer(parts(5, 0.01), settings(1), 5);
  const std::string message = error_of([&] { trainer.fit(bad, val_); });
  EXPECT_NE(message.find("training diverged in epoch 1, batch "), std::string::npos) << message;
  EXPECT_NE(message.find("pixel values (after any [[augment]] plugins) are not all finite"), std::string::npos)
      << message;
}

// Records the step hooks in the order the loop calls them, and what each one can see.
class StepRecorder : public TrainingCallback {
 public:
  void on_batch_begin(Trainer&, const BatchBegin& batch) override {
    events.push_back("begin " + std::to_string(batch.epoch) + "." + std::to_string(batch.batch));
    autocast_in_forward.push_back(at::autocast::is_cpu_enabled());
  }
  void on_before_backward(Trainer&) override { events.push_back("before_backward"); }
  void on_before_optimizer_step(Trainer& trainer) override {
    events.push_back("before_step");
    autocast_in_step.push_back(at::autocast::is_cpu_enabled());
    double norm = 0;
    for (const auto& p : trainer.model().parameters())
      if (p.grad().defined()) norm += p.grad().norm().item<double>();
    gradient_norms.push_back(norm);
  }
  void on_batch_end(Trainer&, const BatchEnd&) override { events.push_back("end"); }

  std::vector<std::string> events;
  std::vector<bool> autocast_in_forward, autocast_in_step;
  std::vector<double> gradient_norms;
};

TEST_F(TrainerTest, ACallbackOfItsOwnSeesEveryStepHookInOrderWithTheBatchsGradients) {
  Trainer trainer(parts(5, 0.01), settings(1), 5);
  auto recorder = std::make_shared<StepRecorder>();
  trainer.add_callback(recorder);
  trainer.fit(train_, val_);
  // 96 images in batches of 16: six steps.
  std::vector<std::string> expected;
  for (int b = 0; b < 6; ++b)
    for (std::string event : {"begin 1." + std::to_string(b), std::string("before_backward"),
                              std::string("before_step"), std::string("end")})
      expected.push_back(event);
  EXPECT_EQ(recorder->events, expected);
  for (double norm : recorder->gradient_norms) EXPECT_GT(norm, 0.0) << "backward ran before the step hook";
  for (bool on : recorder->autocast_in_forward) EXPECT_FALSE(on) << "fp32 opens no autocast scope";
}

TEST_F(TrainerTest, Bf16RunsTheForwardPassUnderAutocastAndStillLearns) {
  TrainSettings s = settings(15);
  s.precision = Precision::bf16;
  Trainer trainer(parts(7, 0.01), s, 7);
  auto recorder = std::make_shared<StepRecorder>();
  trainer.add_callback(recorder);
  trainer.fit(train_, val_);
  ASSERT_FALSE(recorder->autocast_in_forward.empty());
  for (bool on : recorder->autocast_in_forward) EXPECT_TRUE(on) << "the forward pass runs under autocast";
  for (bool on : recorder->autocast_in_step) EXPECT_FALSE(on) << "backward and the step run outside it";
  EXPECT_FALSE(at::autocast::is_cpu_enabled()) << "nothing is left switched on after training";
  for (const auto& p : trainer.model().parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat32) << "weights stay fp32";
  EXPECT_GE(accuracy(trainer.predict(test_).probabilities, test_.labels), 0.6);
}

TEST_F(TrainerTest, Bf16PredictionIsCloseToFp32ButComputedInBf16) {
  TrainSettings bf16 = settings(1);
  bf16.precision = Precision::bf16;
  Trainer a(parts(7, 0.01), settings(1), 7);
  Trainer b(parts(7, 0.01), bf16, 7);
  const torch::Tensor fp32_probabilities = a.predict(test_).probabilities;
  const torch::Tensor bf16_probabilities = b.predict(test_).probabilities;
  EXPECT_EQ(bf16_probabilities.scalar_type(), torch::kFloat32);
  EXPECT_FALSE(torch::equal(fp32_probabilities, bf16_probabilities)) << "bf16 changed nothing: autocast was off";
  EXPECT_LT((fp32_probabilities - bf16_probabilities).abs().max().item<double>(), 0.02);
}

TEST_F(TrainerTest, ChannelsLastLaysOutTheConvolutionWeightsAndKeepsTheNumbers) {
  TrainSettings s = settings(3);
  s.channels_last = true;
  Trainer a(parts(11, 0.01), settings(3), 11);
  Trainer b(parts(11, 0.01), s, 11);
  int four_d = 0;
  for (const auto& p : b.model().parameters())
    if (p.dim() == 4) {
      ++four_d;
      EXPECT_TRUE(p.is_contiguous(at::MemoryFormat::ChannelsLast));
    }
  EXPECT_GT(four_d, 0);
  const auto history_a = a.fit(train_, val_).history;
  const auto history_b = b.fit(train_, val_).history;
  for (size_t e = 0; e < history_a.size(); ++e) EXPECT_NEAR(history_a[e].train.loss, history_b[e].train.loss, 1e-4);
  EXPECT_TRUE(torch::allclose(a.predict(test_).probabilities, b.predict(test_).probabilities, 1e-4, 1e-5));
}

TEST_F(TrainerTest, NonFiniteOutputsStopPredictionWithTheDivergenceAdvice) {
  TrainerParts p = parts(5, 0.01);
  {
    torch::NoGradGuard no_grad;
    for (auto& parameter : p.model->parameters()) parameter.fill_(std::numeric_limits<float>::infinity());
  }
  Trainer trainer(p, settings(1), 5);
  EXPECT_EQ(error_of([&] { trainer.predict(test_); }),
            "the model's class probabilities are not finite (NaN or infinite) for 40 of 40 inputs: the model has "
            "diverged. The likely cause is a learning rate too high for this model and optimizer (lr 0.01); lower "
            "[optimizer] lr, e.g. tenfold");
}

// Flips one bit of `file` inside the bytes of `tensor` as stored there.
void flip_a_bit_of(const fs::path& file, const torch::Tensor& tensor) {
  std::ifstream in(file, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const torch::Tensor t = tensor.detach().contiguous();
  const std::string needle(static_cast<const char*>(t.data_ptr()), 16);
  const size_t at = bytes.find(needle);
  ASSERT_NE(at, std::string::npos) << "the tensor's bytes are not stored as they are";
  bytes[at + 5] = static_cast<char>(bytes[at + 5] ^ 0x10);
  std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
}

TEST_F(TrainerTest, ACheckpointWhoseContentDoesNotMatchItsChecksumIsRefusedByName) {
  Trainer first(parts(5, 0.01), settings(1), 5);
  first.set_checkpoint_dir(folder_);
  first.fit(train_, val_);
  const torch::Tensor weight = first.model().named_parameters()["hidden.weight"];
  flip_a_bit_of(folder_ / "last.pt", weight);

  Trainer second(parts(5, 0.01), settings(2), 5);
  second.set_checkpoint_dir(folder_);
  const std::string message = error_of([&] { second.resume(); });
  EXPECT_EQ(message.rfind((folder_ / "last.pt").string() + ": this checkpoint's content does not match its checksum (",
                          0),
            0u)
      << message;
  Trainer third(parts(5, 0.01), settings(2), 5);
  EXPECT_EQ(error_of([&] { third.load_weights(folder_ / "last.pt"); }), message);
}

TEST_F(TrainerTest, ACheckpointWithNonFiniteWeightsIsRefusedByName) {
  Trainer first(parts(5, 0.01), settings(1), 5);
  first.set_checkpoint_dir(folder_);
  first.fit(train_, val_);
  // Overwrite the stored weights with NaN in place, as a damaged or foreign file could hold.
  const torch::Tensor weight = first.model().named_parameters()["out.weight"].detach().contiguous();
  std::ifstream in(folder_ / "best.pt", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  const size_t at = bytes.find(std::string(static_cast<const char*>(weight.data_ptr()), 16));
  ASSERT_NE(at, std::string::npos);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(&bytes[at], &nan, sizeof nan);
  std::ofstream(folder_ / "best.pt", std::ios::binary | std::ios::trunc) << bytes;

  Trainer second(parts(5, 0.01), settings(2), 5);
  second.set_checkpoint_dir(folder_);
  EXPECT_EQ(error_of([&] { second.resume(); }),
            (folder_ / "best.pt").string() +
                ": tensor \"out.weight\" of this checkpoint holds NaN or infinite values; it was damaged or saved "
                "from a diverged run. Start a new run");
}

TEST_F(TrainerTest, ATruncatedBestCheckpointIsReportedAsBestNotLast) {
  Trainer first(parts(5, 0.01), settings(1), 5);
  first.set_checkpoint_dir(folder_);
  first.fit(train_, val_);
  fs::resize_file(folder_ / "best.pt", fs::file_size(folder_ / "best.pt") / 2);
  Trainer second(parts(5, 0.01), settings(2), 5);
  second.set_checkpoint_dir(folder_);
  const std::string message = error_of([&] { second.resume(); });
  EXPECT_EQ(message.rfind((folder_ / "best.pt").string() + ": cannot read this checkpoint", 0), 0u) << message;
  // Eval and predict read checkpoints too: the message is not about resuming (issue #22 LOW).
  EXPECT_EQ(message.find("resume"), std::string::npos) << message;
}

TEST_F(TrainerTest, TemporaryCheckpointsOfKilledRunsAreRemovedAndLiveOnesKept) {
  // No process has pid 2^22+1 (Linux caps pids at 2^22): that writer was killed.
  const fs::path orphan = folder_ / "last.pt.4194305.0.tmp";
  const fs::path live = folder_ / ("last.pt." + std::to_string(::getpid()) + ".7.tmp");
  const fs::path unrelated = folder_ / "notes.4194305.tmp.txt";
  for (const auto& file : {orphan, live, unrelated}) std::ofstream(file) << "partial";
  Trainer trainer(parts(5, 0.01), settings(1), 5);
  trainer.set_checkpoint_dir(folder_);
  trainer.fit(train_, val_);
  EXPECT_FALSE(fs::exists(orphan));
  EXPECT_TRUE(fs::exists(live)) << "a running writer's temporary file was removed";
  EXPECT_TRUE(fs::exists(unrelated));
}

}  // namespace
}  // namespace bachlab::host
