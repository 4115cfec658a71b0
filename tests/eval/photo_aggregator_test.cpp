// The learned photo aggregator: its features are the hand-computed statistics, it learns
// what the mean cannot see (a few confident patches), it is deterministic and survives a
// JSON round trip, a broken file is named, the cross-fitting never lets a photo's own
// label reach the aggregator that predicts it, and predict_photos uses it.
#include "host/eval/photo_aggregator.h"
#include "host/eval/photo_prediction.h"

#include <bachlab/sdk/error.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <vector>

namespace bachlab::host {
namespace {

TEST(PhotoFeaturesTest, MeanQuartilesMaxAndVotesPerClass) {
  // Four patches, two classes.
  const torch::Tensor p = torch::tensor({0.9f, 0.1f, 0.6f, 0.4f, 0.2f, 0.8f, 0.3f, 0.7f}).view({4, 2});
  const torch::Tensor f = photo_features(p);
  ASSERT_EQ(f.numel(), kPhotoFeaturesPerClass * 2);
  // mean, q25, median, q75 (linear interpolation), max, vote share; class 0 then class 1 per statistic.
  const std::vector<float> expected = {0.5f,   0.5f,  0.275f, 0.325f, 0.45f, 0.55f,
                                       0.675f, 0.725f, 0.9f,  0.8f,   0.5f,  0.5f};
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(f[int64_t(i)].item<float>(), expected[i], 1e-6) << i;
}

// Photos of class 1 have the mean of class 0 but a few very confident class-1 patches: the
// mean calls every photo class 0, the aggregator reads the maximum.
struct FewConfidentPatches {
  torch::Tensor features, labels;
  explicit FewConfidentPatches(int64_t photos, uint64_t seed) {
    torch::manual_seed(seed);
    std::vector<torch::Tensor> rows;
    std::vector<int64_t> y;
    for (int64_t i = 0; i < photos; ++i) {
      const int64_t label = i % 2;
      torch::Tensor p1 = 0.3 + 0.1 * torch::rand({16});
      if (label == 1) {
        p1.slice(0, 0, 2).fill_(0.95);
        p1.slice(0, 2).sub_(0.09);
      }
      rows.push_back(photo_features(torch::stack({1 - p1, p1}, 1)));
      y.push_back(label);
    }
    features = torch::stack(rows);
    labels = torch::tensor(y, torch::kLong);
  }
};

TEST(PhotoAggregatorTest, LearnsWhatTheMeanCannotSeeAndIsDeterministic) {
  const FewConfidentPatches train(40, 1), test(40, 2);
  // The mean (feature 1: class 1's mean) sits under 0.5 for every photo.
  EXPECT_TRUE(test.features.select(1, 1).lt(0.5).all().item<bool>());
  const PhotoAggregator a = PhotoAggregator::fit(train.features, train.labels, 2);
  const torch::Tensor p = a.probabilities(test.features);
  EXPECT_EQ(p.sizes(), torch::IntArrayRef({40, 2}));
  EXPECT_NEAR(p.sum(1).mean().item<double>(), 1.0, 1e-5);
  EXPECT_EQ(p.argmax(1).eq(test.labels).sum().item<int64_t>(), 40);
  const PhotoAggregator again = PhotoAggregator::fit(train.features, train.labels, 2);
  EXPECT_TRUE(torch::equal(again.probabilities(test.features), p)) << "two fits, two answers";
}

TEST(PhotoAggregatorTest, JsonRoundTripAndBrokenFilesAreNamed) {
  const FewConfidentPatches data(20, 3);
  const PhotoAggregator a = PhotoAggregator::fit(data.features, data.labels, 2);
  const nlohmann::json json = a.to_json();
  const PhotoAggregator back = PhotoAggregator::from_json(nlohmann::json::parse(json.dump()), "agg.json");
  EXPECT_TRUE(torch::allclose(back.probabilities(data.features), a.probabilities(data.features), 0, 1e-6));

  nlohmann::json short_bias = json;
  short_bias["bias"] = std::vector<double>{0.0};
  EXPECT_THAT([&] { PhotoAggregator::from_json(short_bias, "/runs/x/aggregator.json"); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr("/runs/x/aggregator.json: the aggregator's sizes")));
  nlohmann::json text = json;
  text["weight"] = "abc";
  EXPECT_THAT([&] { PhotoAggregator::from_json(text, "agg.json"); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr("agg.json: \"weight\" must be a list of numbers")));
  EXPECT_THAT([&] { PhotoAggregator::from_json(nlohmann::json::parse("[1]"), "agg.json"); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr("agg.json: expected a JSON object")));
  EXPECT_THAT([&] { a.probabilities(torch::zeros({1, 6})); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr("fitted on 12 features per photo but was given 6")));
  torch::Tensor bad = data.features.clone();
  bad[0][0] = std::nan("");
  EXPECT_THROW(PhotoAggregator::fit(bad, data.labels, 2), Error);
}

TEST(PhotoAggregatorTest, CrossFittingNeverSeesThePredictedFoldsLabels) {
  const FewConfidentPatches data(30, 4);
  std::vector<int> groups;
  for (int i = 0; i < 30; ++i) groups.push_back(i / 10);
  const torch::Tensor p = cross_fitted_probabilities(data.features, data.labels, groups, 2);
  EXPECT_EQ(p.argmax(1).eq(data.labels).sum().item<int64_t>(), 30);
  // Fold 1's labels turned upside down: fold 1's own predictions cannot change, the other
  // folds' must (their aggregators learnt from those labels).
  torch::Tensor flipped = data.labels.clone();
  flipped.slice(0, 10, 20) = 1 - flipped.slice(0, 10, 20);
  const torch::Tensor q = cross_fitted_probabilities(data.features, flipped, groups, 2);
  EXPECT_TRUE(torch::equal(q.slice(0, 10, 20), p.slice(0, 10, 20)));
  EXPECT_FALSE(torch::allclose(q.slice(0, 0, 10), p.slice(0, 0, 10)));
  EXPECT_THROW(cross_fitted_probabilities(data.features, data.labels, std::vector<int>(30, 0), 2), Error);
}

TEST(PhotoAggregatorTest, PredictPhotosUsesTheAggregatorAndTheMeanBeforeItExists) {
  // A "model" whose class-1 probability is a patch's mean brightness.
  const PatchProbabilities model = [](const torch::Tensor& batch) {
    const torch::Tensor p1 = batch.to(torch::kFloat32).mean({1, 2, 3}) / 255.0;
    return torch::stack({1 - p1, p1}, 1);
  };
  torch::Tensor images = torch::full({2, 3, 32, 32}, 60, torch::kUInt8);
  images[1].slice(1, 0, 16).slice(2, 0, 16).fill_(250);  // one bright patch of four
  PhotoPredictionSettings settings;
  settings.patch_size = 16;
  settings.stride = 16;
  settings.aggregate = Aggregate::learned;
  const PhotoPredictions before = predict_photos(images, {}, model, settings);
  ASSERT_TRUE(before.features.defined());
  EXPECT_EQ(before.features.sizes(), torch::IntArrayRef({2, 12}));
  settings.aggregate = Aggregate::mean;
  EXPECT_TRUE(torch::allclose(before.probabilities, predict_photos(images, {}, model, settings).probabilities));
  EXPECT_FALSE(predict_photos(images, {}, model, settings).features.defined());

  const FewConfidentPatches data(20, 5);
  settings.aggregate = Aggregate::learned;
  settings.aggregator = std::make_shared<const PhotoAggregator>(PhotoAggregator::fit(data.features, data.labels, 2));
  const PhotoPredictions after = predict_photos(images, {}, model, settings);
  EXPECT_TRUE(torch::allclose(after.probabilities, settings.aggregator->probabilities(before.features)));
  EXPECT_EQ(after.probabilities.argmax(1)[1].item<int64_t>(), 1) << "the bright patch decides, as it was learnt";
}

}  // namespace
}  // namespace bachlab::host
