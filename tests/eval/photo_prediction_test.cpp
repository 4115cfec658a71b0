// Photo-level prediction: the patch grid reaches every edge, the three aggregations give
// the hand-computed values, test-time augmentation averages a non-rotation-invariant
// model over exactly the transformed inputs, and predict_photos hands out every patch's
// position and probabilities.
#include "host/eval/photo_prediction.h"

#include <bachlab/sdk/param_table.h>
#include <bachlab/sdk/error.h>

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace bachlab::host {
namespace {

TEST(GridTest, StartsReachTheFarEdge) {
  EXPECT_EQ(grid_starts(64, 16, 16), (std::vector<int64_t>{0, 16, 32, 48}));
  // 100 is no multiple of 32: the last patch sits on the edge and overlaps the one before.
  EXPECT_EQ(grid_starts(100, 32, 32), (std::vector<int64_t>{0, 32, 64, 68}));
  EXPECT_EQ(grid_starts(40, 16, 8), (std::vector<int64_t>{0, 8, 16, 24}));
  EXPECT_EQ(grid_starts(16, 16, 8), (std::vector<int64_t>{0}));
  EXPECT_EQ(grid_starts(20, 16, 0), (std::vector<int64_t>{0, 4}));  // stride 0: the patch size
  EXPECT_THROW(grid_starts(10, 16, 16), Error);
}

TEST(GridTest, PositionsCoverEveryPixelOfANonSquarePhoto) {
  const torch::Tensor positions = grid_positions(50, 70, 16, 16);
  EXPECT_EQ(positions.size(0), 4 * 5);
  torch::Tensor covered = torch::zeros({50, 70}, torch::kInt);
  for (int64_t i = 0; i < positions.size(0); ++i) {
    const int64_t y = positions[i][0].item<int64_t>(), x = positions[i][1].item<int64_t>();
    EXPECT_LE(y + 16, 50);
    EXPECT_LE(x + 16, 70);
    covered.slice(0, y, y + 16).slice(1, x, x + 16) += 1;
  }
  EXPECT_TRUE(covered.gt(0).all().item<bool>());
}

TEST(AggregateTest, MeanVoteAndMaxAsComputedByHand) {
  const torch::Tensor p = torch::tensor({{0.6f, 0.4f}, {0.1f, 0.9f}, {0.2f, 0.8f}});
  EXPECT_TRUE(torch::allclose(aggregate_patches(p, Aggregate::mean), torch::tensor({0.3f, 0.7f})));
  // Votes 1/3 and 2/3, plus half a vote's worth (0.5/3) of the mean, renormalised.
  const double bonus = 0.5 / 3;
  EXPECT_TRUE(torch::allclose(aggregate_patches(p, Aggregate::vote),
                              torch::tensor({float((1.0 / 3 + 0.3 * bonus) / (1 + bonus)),
                                             float((2.0 / 3 + 0.7 * bonus) / (1 + bonus))})));
  // Per-class maxima 0.6 and 0.9, normalised.
  EXPECT_TRUE(torch::allclose(aggregate_patches(p, Aggregate::max), torch::tensor({0.4f, 0.6f})));
  // A tied vote goes to the class with the higher mean probability, whatever its index.
  const torch::Tensor tie = torch::tensor({{0.45f, 0.55f}, {0.9f, 0.1f}});
  EXPECT_EQ(aggregate_patches(tie, Aggregate::vote).argmax().item<int64_t>(), 0);
  const torch::Tensor tie2 = torch::tensor({{0.1f, 0.9f}, {0.55f, 0.45f}});
  EXPECT_EQ(aggregate_patches(tie2, Aggregate::vote).argmax().item<int64_t>(), 1);
  EXPECT_NEAR(aggregate_patches(tie2, Aggregate::vote).sum().item<double>(), 1.0, 1e-6);
}

// A linear model over the raw pixels: it sees where each pixel is, so it is neither
// rotation- nor flip-invariant.
PatchProbabilities linear_model(int64_t size, uint64_t seed) {
  torch::manual_seed(seed);
  torch::Tensor weights = torch::randn({3 * size * size, 3});
  return [weights](const torch::Tensor& batch) {
    return torch::softmax(batch.to(torch::kFloat32).flatten(1).matmul(weights), 1);
  };
}

// The dihedral group of the square from its two generators, transposing and flipping
// left-right, found by closure (not by the rotations the code uses).
std::vector<torch::Tensor> dihedral_images(const torch::Tensor& batch) {
  std::vector<torch::Tensor> group{batch};
  for (size_t i = 0; i < group.size(); ++i)
    for (const torch::Tensor& next : {group[i].transpose(2, 3).contiguous(), group[i].flip({3})}) {
      bool seen = false;
      for (const auto& g : group) seen = seen || torch::equal(g, next);
      if (!seen) group.push_back(next);
    }
  return group;
}

TEST(TtaTest, D4IsTheMeanOverTheEightTransformedInputs) {
  const int64_t size = 6;
  const torch::Tensor batch = torch::rand({4, 3, size, size});
  const PatchProbabilities model = linear_model(size, 3);
  const std::vector<torch::Tensor> group = dihedral_images(batch);
  ASSERT_EQ(group.size(), 8u);
  torch::Tensor expected = torch::zeros({4, 3});
  for (const auto& g : group) expected += model(g) / 8.0;
  EXPECT_TRUE(torch::allclose(tta_probabilities(batch, model, Tta::d4), expected, 1e-5, 1e-6));
  // The model is not invariant, so TTA changes its output...
  EXPECT_FALSE(torch::allclose(model(batch), expected, 1e-3, 1e-3));
  // ...and the averaged model is: rotating or flipping the input leaves it as it was.
  for (const auto& g : group) EXPECT_TRUE(torch::allclose(tta_probabilities(g, model, Tta::d4), expected, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(tta_probabilities(batch, model, Tta::none), model(batch)));
}

TEST(TtaTest, FlipsAreTheMeanOverTheFourFlippedInputs) {
  const torch::Tensor batch = torch::rand({2, 3, 5, 7});  // not square: flips need no square
  const PatchProbabilities model = [](const torch::Tensor& b) {
    torch::manual_seed(9);
    return torch::softmax(b.flatten(1).matmul(torch::randn({3 * 5 * 7, 2})), 1);
  };
  const torch::Tensor expected = (model(batch) + model(batch.flip({3})) + model(batch.flip({2})) +
                                  model(batch.flip({2}).flip({3}))) / 4.0;
  EXPECT_TRUE(torch::allclose(tta_probabilities(batch, model, Tta::flips), expected, 1e-5, 1e-6));
  EXPECT_THROW(tta_probabilities(batch, model, Tta::d4), Error);  // 90 degrees needs a square
}

// Class 0's probability is a patch's mean red value (in [0,1]); class 1 the rest.
torch::Tensor red_model(const torch::Tensor& batch) {
  torch::Tensor red = batch.to(torch::kFloat32).select(1, 0).mean({1, 2}) / 255.0;
  return torch::stack({red, 1 - red}, 1);
}

TEST(PredictPhotosTest, EveryPatchWithItsPositionAndTheAggregate) {
  // One 16x24 photo: the left 8 columns red, the rest black; patches of 8, stride 8.
  torch::Tensor images = torch::zeros({1, 3, 16, 24}, torch::kUInt8);
  images.select(1, 0).slice(2, 0, 8).fill_(255);
  PhotoPredictionSettings s;
  s.patch_size = 8;
  s.stride = 8;
  PhotoPredictions p = predict_photos(images, torch::tensor({1}, torch::kLong), red_model, s, true);
  ASSERT_EQ(p.patches.size(), 1u);
  const PhotoPatches& patches = p.patches[0];
  EXPECT_TRUE(torch::equal(patches.positions, torch::tensor({0, 0, 0, 8, 0, 16, 8, 0, 8, 8, 8, 16}, torch::kLong).view({6, 2})));
  EXPECT_TRUE(torch::allclose(patches.probabilities.select(1, 0), torch::tensor({1.f, 0.f, 0.f, 1.f, 0.f, 0.f})));
  EXPECT_TRUE(torch::allclose(p.probabilities, torch::tensor({{1.f / 3, 2.f / 3}})));
  // Label 1: four of the six patches call it.
  EXPECT_EQ(p.patch_correct, 4);
  EXPECT_EQ(p.patch_total, 6);
  EXPECT_NEAR(p.loss, -std::log(2.0 / 3), 1e-6);
}

TEST(PredictPhotosTest, BlankGlassStaysOutOfTheVoteWithMinTissue) {
  // Left half dark red tissue, right half white glass.
  torch::Tensor images = torch::full({1, 3, 8, 16}, 255, torch::kUInt8);
  images.slice(3, 0, 8).select(1, 1).fill_(0);
  images.slice(3, 0, 8).select(1, 2).fill_(0);
  PhotoPredictionSettings s;
  s.patch_size = 8;
  PhotoPredictions all = predict_photos(images, torch::tensor({0}, torch::kLong), red_model, s, true);
  EXPECT_EQ(all.patch_total, 2);
  s.min_tissue = 0.5;
  PhotoPredictions tissue = predict_photos(images, torch::tensor({0}, torch::kLong), red_model, s, true);
  EXPECT_EQ(tissue.patch_total, 1);
  EXPECT_TRUE(torch::equal(tissue.patches[0].counted, torch::tensor({true, false})));
  // Only the tissue patch counts: both of its channels but red are 0, so the model says class 0.
  EXPECT_TRUE(torch::allclose(tissue.probabilities, torch::tensor({{1.f, 0.f}})));
  // A photo with no tissue at all still gets a prediction, from all of its patches.
  torch::Tensor glass = torch::full({1, 3, 8, 16}, 255, torch::kUInt8);
  EXPECT_EQ(predict_photos(glass, torch::tensor({0}, torch::kLong), red_model, s).patch_total, 2);
}

TEST(PredictPhotosTest, WholePhotosAreOneInputEach) {
  torch::Tensor images = torch::randint(0, 256, {5, 3, 6, 10}, torch::kUInt8);
  PhotoPredictionSettings s;
  s.batch_size = 2;
  PhotoPredictions p = predict_photos(images, {}, red_model, s, true);
  EXPECT_TRUE(torch::allclose(p.probabilities, red_model(images)));
  EXPECT_TRUE(std::isnan(p.loss));
  EXPECT_TRUE(std::isnan(p.patch_accuracy()));
  EXPECT_EQ(p.patches.size(), 5u);
}

TEST(PhotoSettingsTest, PatchKeysNeedPatchesAndAStrideThatCovers) {
  sdk::ParamTable eval("[eval]"), patches("[eval.patches]");
  patches.set("stride", int64_t{64});
  PhotoPredictionSettings s = read_photo_prediction_settings(eval, patches, 32, 0.0);
  ASSERT_EQ(patches.problems().size(), 1u);
  EXPECT_NE(patches.problems()[0].find("stride must be at most the patch size 32"), std::string::npos)
      << patches.problems()[0];

  sdk::ParamTable eval2("[eval]"), patches2("[eval.patches]");
  patches2.set("aggregate", std::string("vote"));
  read_photo_prediction_settings(eval2, patches2, 0, 0.0);
  ASSERT_EQ(patches2.problems().size(), 1u);
  EXPECT_NE(patches2.problems()[0].find("only applies to patch prediction"), std::string::npos);

  sdk::ParamTable eval3("[eval]"), patches3("[eval.patches]");
  eval3.set("tta", std::string("d4"));
  s = read_photo_prediction_settings(eval3, patches3, 32, 0.25);
  EXPECT_TRUE(eval3.problems().empty() && patches3.problems().empty());
  EXPECT_EQ(s.stride, 32);
  EXPECT_EQ(s.tta, Tta::d4);
  EXPECT_EQ(s.aggregate, Aggregate::mean);
  EXPECT_EQ(s.min_tissue, 0.25);
}

}  // namespace
}  // namespace bachlab::host
