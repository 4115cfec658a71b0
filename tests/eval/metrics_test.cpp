// The metrics against scikit-learn's values for the same probabilities
// (fixtures/metric_cases.json, made by fixtures/make_metric_fixtures.py).
#include "host/eval/metrics.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <future>
#include <limits>

namespace bachlab::host {
namespace {

nlohmann::json load_cases() {
  std::ifstream in(std::string(BACHLAB_SOURCE_DIR) + "/tests/eval/fixtures/metric_cases.json");
  EXPECT_TRUE(in.good()) << "fixture missing; run tests/eval/fixtures/make_metric_fixtures.py";
  return nlohmann::json::parse(in)["cases"];
}

torch::Tensor probabilities_of(const nlohmann::json& c) {
  std::vector<double> flat;
  for (const auto& row : c["probabilities"])
    for (double v : row) flat.push_back(v);
  return torch::tensor(flat, torch::kFloat64).view({-1, c["classes"].get<int64_t>()});
}

torch::Tensor labels_of(const nlohmann::json& c) {
  return torch::tensor(c["labels"].get<std::vector<int64_t>>(), torch::kInt64);
}

TEST(Metrics, MatchScikitLearnOnEveryFixture) {
  auto cases = load_cases();
  ASSERT_EQ(cases.size(), 4u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c["name"].get<std::string>());
    SplitMetrics m = compute_metrics(probabilities_of(c), labels_of(c), 0.0);
    EXPECT_NEAR(m.accuracy, c["accuracy"].get<double>(), 1e-12);
    EXPECT_NEAR(m.auroc_micro, c["auroc_micro"].get<double>(), 1e-12);
    EXPECT_NEAR(m.auroc_macro, c["auroc_macro"].get<double>(), 1e-12);
    ASSERT_EQ(m.auroc_per_class.size(), c["auroc_per_class"].size());
    for (size_t k = 0; k < m.auroc_per_class.size(); ++k) {
      if (c["auroc_per_class"][k].is_null()) {
        EXPECT_TRUE(std::isnan(m.auroc_per_class[k])) << "class " << k;
      } else {
        EXPECT_NEAR(m.auroc_per_class[k], c["auroc_per_class"][k].get<double>(), 1e-12) << "class " << k;
      }
    }
    EXPECT_EQ(m.confusion, c["confusion"].get<std::vector<std::vector<int64_t>>>());
    for (size_t k = 0; k < m.per_class.size(); ++k) {
      EXPECT_NEAR(m.per_class[k].precision, c["precision"][k].get<double>(), 1e-12) << "class " << k;
      EXPECT_NEAR(m.per_class[k].recall, c["recall"][k].get<double>(), 1e-12) << "class " << k;
      EXPECT_NEAR(m.per_class[k].f1, c["f1"][k].get<double>(), 1e-12) << "class " << k;
      EXPECT_EQ(m.per_class[k].support, c["support"][k].get<int64_t>()) << "class " << k;
    }
    EXPECT_NEAR(m.f1_macro, c["f1_macro"].get<double>(), 1e-12);
  }
}

TEST(Metrics, FloatProbabilitiesGiveTheSameAurocAsDoubles) {
  // The trainer hands float32 softmax output; ties must survive the conversion.
  auto c = load_cases()[1];
  torch::Tensor probabilities = probabilities_of(c);
  EXPECT_NEAR(auroc_micro(probabilities.to(torch::kFloat32), labels_of(c)), c["auroc_micro"].get<double>(), 1e-12);
}

TEST(Metrics, BinaryAurocIsUndefinedWithOneClass) {
  EXPECT_TRUE(std::isnan(binary_auroc({0.1, 0.9}, {true, true})));
  EXPECT_TRUE(std::isnan(binary_auroc({0.1, 0.9}, {false, false})));
  EXPECT_DOUBLE_EQ(binary_auroc({0.1, 0.9}, {false, true}), 1.0);
  EXPECT_DOUBLE_EQ(binary_auroc({0.5, 0.5}, {false, true}), 0.5);
}

// Runs `f` on a thread and fails (ending the process, since a spinning thread cannot be
// stopped) if it has not returned within 10 s: a hang becomes a failure, not a stuck ctest.
template <typename F>
auto within_seconds(F f) {
  auto future = std::async(std::launch::async, f);
  if (future.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    ADD_FAILURE() << "did not return within 10 s (an endless loop)";
    std::_Exit(1);
  }
  return future.get();
}

TEST(Metrics, NaNScoresGiveAnUndefinedAurocInsteadOfLoopingForever) {
  // A diverged model outputs NaN probabilities; the tie walk used to compare NaN with
  // itself and never advance.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_TRUE(std::isnan(within_seconds([&] { return binary_auroc({nan, nan, 0.3}, {false, true, true}); })));
  const torch::Tensor probabilities = torch::full({6, 4}, nan, torch::kFloat32);
  const torch::Tensor labels = torch::tensor({0, 1, 2, 3, 0, 1}, torch::kInt64);
  const SplitMetrics m = within_seconds([&] { return compute_metrics(probabilities, labels, nan); });
  EXPECT_TRUE(std::isnan(m.auroc_micro));
  EXPECT_TRUE(std::isnan(m.auroc_macro));
}

}  // namespace
}  // namespace bachlab::host
