// Patch training: the sampler's patches are crops of the image at its own resolution (any
// height and width), drawn from the trainer's generator (so a resumed run draws the same
// ones), skipping blank glass when asked; a run interrupted anywhere resumes to the same
// numbers; and, end to end through `bachlab run`'s code path, patches plus grid
// prediction learn a texture that squeezing the whole photo destroys.
#include "host/eval/photo_aggregator.h"
#include "host/eval/photo_prediction.h"
#include "host/plugins/registry.h"
#include "host/train/patch_sampler.h"
#include "host/train/runner.h"
#include "host/train/trainer.h"
#include "tests/train/batch_hook.h"
#include "host/util/atomic_file.h"
#include "tests/train/csv_rows.h"

#include <bachlab/sdk/param_table.h>
#include <bachlab/sdk/error.h>

#include <ATen/CPUGeneratorImpl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <unistd.h>

namespace bachlab::host {
namespace {

namespace fs = std::filesystem;

torch::Generator generator(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

TensorSplit random_images(int64_t n, int64_t height, int64_t width, uint64_t seed) {
  torch::Generator g = generator(seed);
  return {torch::randint(0, 256, {n, 3, height, width}, g, torch::kUInt8), torch::arange(n, torch::kLong).remainder(4)};
}

PatchSettings patch_settings(int64_t size, int64_t per_image, double min_tissue = 0.0) {
  PatchSettings s;
  s.size = size;
  s.per_image = per_image;
  s.min_tissue = min_tissue;
  return s;
}

TEST(PatchSamplerTest, PatchesAreCropsOfTheirOwnPhotoAtFullResolutionWithItsLabel) {
  const TensorSplit split = random_images(3, 20, 36, 1);  // not square
  PatchSampler sampler(split, patch_settings(8, 5));
  torch::Generator g = generator(2);
  ASSERT_EQ(sampler.start_epoch(g), 15);
  const Batch batch = sampler.batch(0, 15);
  ASSERT_EQ(batch.images.sizes(), torch::IntArrayRef({15, 3, 8, 8}));
  EXPECT_TRUE(torch::equal(batch.labels, split.labels.index_select(0, batch.rows)));
  // Each image gives exactly per_image patches.
  EXPECT_TRUE(torch::equal(torch::bincount(batch.rows), torch::full({3}, 5, torch::kLong)));
  for (int64_t i = 0; i < 15; ++i) {
    // Find the crop in its photo: the positions must lie inside and the pixels match one.
    const torch::Tensor photo = split.images[batch.rows[i].item<int64_t>()];
    bool found = false;
    for (int64_t y = 0; y + 8 <= 20 && !found; ++y)
      for (int64_t x = 0; x + 8 <= 36 && !found; ++x)
        found = torch::equal(photo.slice(1, y, y + 8).slice(2, x, x + 8), batch.images[i]);
    EXPECT_TRUE(found) << "patch " << i << " is not a crop of its photo";
  }
  const torch::Tensor p = sampler.positions();
  EXPECT_TRUE(p.select(1, 0).le(12).all().item<bool>() && p.select(1, 1).le(28).all().item<bool>());
  EXPECT_TRUE(p.ge(0).all().item<bool>());
}

TEST(PatchSamplerTest, PositionsComeFromTheGeneratorOnly) {
  const TensorSplit split = random_images(4, 32, 48, 1);
  PatchSampler a(split, patch_settings(16, 6)), b(split, patch_settings(16, 6));
  torch::Generator ga = generator(9), gb = generator(9);
  a.start_epoch(ga);
  b.start_epoch(gb);
  EXPECT_TRUE(torch::equal(a.positions(), b.positions()));
  EXPECT_TRUE(torch::equal(a.batch(0, 24).images, b.batch(0, 24).images));
  const torch::Tensor first = a.positions().clone();
  a.start_epoch(ga);  // the next epoch: new positions
  EXPECT_FALSE(torch::equal(a.positions(), first));
}

TEST(PatchSamplerTest, MinTissueSkipsBlankGlass) {
  // White glass with one 32x32 block of tissue in a 64x64 photo. Random 16 px patches
  // average about 0.38 tissue; redrawing those under 0.5 (10 tries) about 0.79.
  TensorSplit split{torch::full({2, 3, 64, 64}, 245, torch::kUInt8), torch::tensor({0, 1}, torch::kLong)};
  split.images.slice(2, 24, 56).slice(3, 8, 40).fill_(120);
  auto mean_tissue = [&](double min_tissue) {
    PatchSampler sampler(split, patch_settings(16, 50, min_tissue));
    torch::Generator g = generator(4);
    sampler.start_epoch(g);
    const Batch batch = sampler.batch(0, 100);
    double sum = 0;
    for (int64_t i = 0; i < 100; ++i) sum += tissue_fraction(batch.images[i]);
    return sum / 100;
  };
  EXPECT_LT(mean_tissue(0.0), 0.5);
  EXPECT_GT(mean_tissue(0.5), 0.65);
  EXPECT_NEAR(tissue_fraction(split.images[0]), 1024.0 / 4096.0, 1e-9);
}

TEST(PatchSamplerTest, APatchLargerThanThePhotoIsRefused) {
  const TensorSplit split = random_images(2, 20, 36, 1);
  try {
    PatchSampler sampler(split, patch_settings(24, 2));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "[data.patches] size = 24 is larger than the prepared images (36x20 pixels, width x height); use a "
              "smaller size or a larger [data] image_size or scale");
  }
}

struct Interrupted {};

class PatchTrainerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    registry_ = new PluginRegistry();
    registry_->scan({TRAIN_TEST_PLUGIN_DIR, BACHLAB_TEST_PLUGIN_DIR});
  }
  static void TearDownTestSuite() { delete registry_; }

  TrainerParts parts(uint64_t seed) {
    torch::manual_seed(seed);
    sdk::ParamTable model_params("[model]");
    TrainerParts p;
    p.model = registry_->create_model("tiny_cnn", {3, 8, 8, 4}, model_params);
    sdk::ParamTable optimizer_params("[optimizer]");
    optimizer_params.set("lr", 0.01);
    p.optimizer = registry_->create_optimizer("adam", {{"all", p.model->parameters()}}, optimizer_params);
    return p;
  }

  static PluginRegistry* registry_;
};

PluginRegistry* PatchTrainerTest::registry_ = nullptr;

TEST_F(PatchTrainerTest, ResumeAfterAnInterruptionEqualsAnUninterruptedRun) {
  const TensorSplit train = random_images(12, 16, 20, 3), val = random_images(8, 16, 20, 4);
  TrainSettings s;
  s.epochs = 3;
  s.batch_size = 10;
  s.threads = 1;
  PhotoPredictionSettings photo;
  photo.patch_size = 8;
  // Photos are validated by their patches, as runner.cpp does.
  auto photo_parts = [&] {
    TrainerParts p = parts(5);
    p.validation = [&](Trainer& trainer, const TensorSplit& v) {
      PhotoPredictions photos = predict_photos(
          v.images, v.labels, [&](const torch::Tensor& x) { return trainer.predict({x, {}}).probabilities; }, photo);
      return Prediction{photos.probabilities, photos.loss};
    };
    return p;
  };
  auto run = [&](Trainer& trainer, PatchSampler& sampler) { return trainer.fit(sampler, val); };
  const fs::path dir = fs::temp_directory_path() / ("bachlab_patch_resume_test_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  Trainer reference(photo_parts(), s, 5);
  PatchSampler reference_patches(train, patch_settings(8, 4));
  const auto expected = run(reference, reference_patches).history;
  {
    Trainer first(photo_parts(), s, 5);
    first.set_checkpoint_dir(dir);
    testing::add_batch_hook(first, [](int64_t epoch, int64_t batch) {
      if (epoch == 2 && batch == 2) throw Interrupted{};
    });
    PatchSampler patches(train, patch_settings(8, 4));
    EXPECT_THROW(run(first, patches), Interrupted);
  }
  Trainer second(photo_parts(), s, 5);
  second.set_checkpoint_dir(dir);
  ASSERT_TRUE(second.resume());
  PatchSampler patches(train, patch_settings(8, 4));
  const auto resumed = run(second, patches).history;
  ASSERT_EQ(resumed.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(resumed[i].train.loss, expected[i].train.loss) << "epoch " << i + 1;
    EXPECT_EQ(resumed[i].val.loss, expected[i].val.loss) << "epoch " << i + 1;
    EXPECT_EQ(resumed[i].val.accuracy, expected[i].val.accuracy) << "epoch " << i + 1;
  }
  // Validation was photo-level: 8 photos, so accuracy is a multiple of 1/8.
  EXPECT_NEAR(std::fmod(expected.back().val.accuracy * 8, 1.0), 0.0, 1e-9);
  fs::remove_all(dir);
}

// Two classes that differ only in a pixel-scale pattern: a checkerboard or horizontal
// stripes, both of period 2, on a random colour with noise. Averaging 4x4 blocks (what
// squeezing 64 px to 16 px does) turns either pattern into its mean, so the squeezed
// photos of both classes are alike; at full resolution a 3x3 convolution tells them apart.
void write_texture_photos(const fs::path& root, int per_class, uint64_t seed) {
  torch::Generator g = generator(seed);
  const int64_t size = 64;
  const torch::Tensor yy = torch::arange(size).view({size, 1}).expand({size, size});
  const torch::Tensor xx = torch::arange(size).view({1, size}).expand({size, size});
  const torch::Tensor checker = (yy + xx).remainder(2).to(torch::kFloat32) * 2 - 1;
  const torch::Tensor stripes = yy.remainder(2).to(torch::kFloat32) * 2 - 1;
  for (const char* name : {"Checker", "Stripes"}) {
    fs::create_directories(root / name);
    for (int i = 0; i < per_class; ++i) {
      const torch::Tensor base = torch::rand({3, 1, 1}, g) * 100 + 80;
      const torch::Tensor pattern = std::string(name) == "Checker" ? checker : stripes;
      torch::Tensor image = base + pattern * 30 + torch::randn({3, size, size}, g) * 8;
      image = image.clamp(0, 255).round().to(torch::kUInt8).permute({1, 2, 0}).contiguous();
      cv::Mat rgb(size, size, CV_8UC3, image.data_ptr<uint8_t>());
      cv::Mat bgr;
      cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
      cv::imwrite((root / name / (std::to_string(i) + ".png")).string(), bgr);
    }
  }
}

// Every misclassified photo a patch model's report lists has its heatmap file (in the fold's
// folder for a cross-validation's pooled list), and the report links it; a whole-photo
// model (`drawn` false) has no map, so none is drawn or linked.
void expect_mistake_heatmaps(const RunSummary& run, bool drawn = true) {
  const std::vector<Mistake> mistakes = misclassified_photos(run, kMistakesListed);
  ASSERT_FALSE(mistakes.empty()) << "the test needs a run with mistakes";
  const std::string report = read_file(fs::path(run.run_dir) / "report.html");
  for (const auto& m : mistakes) {
    const fs::path heatmap = mistake_heatmap(run, m);
    EXPECT_EQ(fs::exists(fs::path(run.run_dir) / heatmap), drawn) << heatmap;
    EXPECT_EQ(report.find("src=\"" + heatmap.generic_string() + "\"") != std::string::npos, drawn) << heatmap;
    if (!run.fold_val_accuracy.empty()) EXPECT_EQ(heatmap.begin()->string().rfind("fold-", 0), 0u) << heatmap;
  }
}

class PatchRecipeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    folder_ = fs::temp_directory_path() /
              ("bachlab_patch_recipe_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(folder_);
    write_texture_photos(folder_ / "photos", 30, 11);
    setenv("BACHLAB_PLUGIN_PATH", (std::string(TRAIN_TEST_PLUGIN_DIR) + ":" + BACHLAB_TEST_PLUGIN_DIR).c_str(), 1);
  }
  void TearDown() override { fs::remove_all(folder_); }

  fs::path config(const std::string& name, const std::string& tables, int epochs = 12,
                  const std::string& split = "train = 0.5\nval = 0.1\ntest = 0.4\n") {
    const fs::path file = folder_ / (name + ".toml");
    std::ofstream(file) << "[experiment]\nseed = 3\noutput = \"runs\"\n"
                        << "[data]\nlayout = \"folders\"\nroot = \"photos\"\nclasses = [\"Checker\", \"Stripes\"]\n"
                        << "workers = 1\ncache_dir = \"cache\"\n" << tables
                        << "[data.split]\n" << split
                        << "[model]\nplugin = \"tiny_cnn\"\ndropout = 0.0\n"
                        << "[optimizer]\nplugin = \"adam\"\nlr = 0.02\n"
                        << "[train]\nepochs = " << epochs << "\nbatch_size = 16\nthreads = 1\nrestore_best = false\n";
    return file;
  }

  fs::path folder_;
};

TEST_F(PatchRecipeTest, PatchesOfTheFullResolutionPhotoLearnWhatSqueezingLoses) {
  // The study's way: the whole photo squeezed to 16 px.
  const RunSummary whole = run_experiment(config("whole", "image_size = 16\n"), RunOptions{});
  // The recipe: 16 px patches of the photo kept at 64 px, a grid of 16 patches per photo.
  const RunSummary patches =
      run_experiment(config("patches", "image_size = 64\n[data.patches]\nsize = 16\nper_image = 8\n"), RunOptions{});
  // The same patches cut from the squeezed photo: what the recipe must not do.
  const RunSummary squeezed_patches =
      run_experiment(config("squeezed", "image_size = 16\n[data.patches]\nsize = 8\nper_image = 8\n"), RunOptions{});
  const double whole_accuracy = whole.split("test")->metrics.accuracy;
  const double patch_accuracy = patches.split("test")->metrics.accuracy;
  const double squeezed_accuracy = squeezed_patches.split("test")->metrics.accuracy;
  EXPECT_EQ(patches.split("test")->size, 24);
  EXPECT_GE(patch_accuracy, 0.9) << "whole photos: " << whole_accuracy;
  EXPECT_LE(whole_accuracy, 0.75) << "the squeezed photos must not show the texture";
  EXPECT_LE(squeezed_accuracy, 0.75) << "patches of the squeezed photos must not show it either";
  // The patch-level figure is reported beside the photo-level one, and only with patches.
  EXPECT_TRUE(std::isfinite(patches.split("test")->patch_accuracy));
  EXPECT_TRUE(std::isnan(whole.split("test")->patch_accuracy));
  // The report draws a heatmap of every misclassified photo it lists, and links it.
  expect_mistake_heatmaps(whole, false);
  expect_mistake_heatmaps(squeezed_patches);
}

TEST_F(PatchRecipeTest, PredictOnACrossValidationAveragesItsFoldModels) {
  const RunSummary cv = run_experiment(
      config("cv", "image_size = 64\n[data.patches]\nsize = 16\nper_image = 2\n[eval]\ntta = \"flips\"\n", 1,
             "folds = 2\n"),
      RunOptions{});
  const std::vector<fs::path> photos = {folder_ / "photos" / "Checker" / "0.png", folder_ / "photos" / "Stripes" / "1.png"};
  const auto ensemble = predict_images(cv.run_dir, photos);
  const auto fold1 = predict_images(fs::path(cv.run_dir) / "fold-1", photos);
  const auto fold2 = predict_images(fs::path(cv.run_dir) / "fold-2", photos);
  ASSERT_EQ(ensemble.size(), 2u);
  for (size_t i = 0; i < photos.size(); ++i) {
    // Mean aggregation is linear, so the ensemble's photo probabilities are the folds' mean.
    for (size_t c = 0; c < 2; ++c)
      EXPECT_NEAR(ensemble[i].probabilities[c], (fold1[i].probabilities[c] + fold2[i].probabilities[c]) / 2, 1e-5);
    EXPECT_NE(fold1[i].probabilities[0], fold2[i].probabilities[0]) << "two folds, two different models";
    // Every grid patch with its position, for heatmaps: 4 x 4 patches of 16 px.
    EXPECT_EQ(ensemble[i].patches.positions.size(0), 16);
    EXPECT_EQ(ensemble[i].patches.probabilities.sizes(), torch::IntArrayRef({16, 2}));
  }
  // One epoch leaves mistakes; the pooled report's heatmaps are the folds' own.
  expect_mistake_heatmaps(cv);
}

// [eval.patches] aggregate = "learned": the pooled out-of-fold figures come from aggregators
// fitted on the other folds (each fold folder keeps the mean its own report shows), the one
// fitted on every fold is written beside them, and predict on the run folder uses it;
// `eval` gives the same figures again; without folds the key is refused.
TEST_F(PatchRecipeTest, LearnedAggregationIsFittedAcrossTheFoldsAndPredictUsesIt) {
  const std::string tables = "image_size = 64\n[data.patches]\nsize = 16\nper_image = 2\n"
                             "[eval.patches]\naggregate = \"learned\"\n";
  const RunSummary cv = run_experiment(config("learned", tables, 2, "folds = 3\n"), RunOptions{});
  const fs::path dir = cv.run_dir;
  ASSERT_TRUE(fs::exists(dir / "aggregator.json"));
  const PhotoAggregator aggregator =
      PhotoAggregator::from_json(nlohmann::json::parse(read_file(dir / "aggregator.json")), dir / "aggregator.json");
  EXPECT_EQ(aggregator.classes(), 2);

  // The root's out-of-fold rows are not the folds' mean-aggregated rows.
  std::map<std::string, std::string> fold_rows;
  for (int k = 1; k <= 3; ++k)
    for (const auto& row : csv_data_rows(read_file(dir / ("fold-" + std::to_string(k)) / "predictions.csv")))
      if (row[5] == "val") fold_rows[row[0]] = row[3];  // file,true,predicted,Checker,Stripes,split,fold
  int differ = 0, rows = 0, right = 0;
  for (const auto& row : csv_data_rows(read_file(dir / "predictions.csv"))) {
    ++rows;
    differ += fold_rows.at(row[0]) != row[3];
    right += row[1] == row[2];
  }
  EXPECT_EQ(rows, 60);
  EXPECT_GT(differ, 50) << "the pooled probabilities are the learned aggregator's";
  EXPECT_DOUBLE_EQ(right / 60.0, cv.split("val")->metrics.accuracy);
  EXPECT_EQ(evaluate_run(dir).split("val")->metrics.confusion, cv.split("val")->metrics.confusion);

  // predict on the run folder: the fold ensemble's patches, then the learned aggregator.
  const std::vector<fs::path> photos = {folder_ / "photos" / "Checker" / "0.png"};
  const auto predicted = predict_images(dir, photos).at(0);
  const torch::Tensor expected =
      aggregator.probabilities(photo_features(counted_probabilities(predicted.patches)))[0].to(torch::kFloat64);
  for (int64_t c = 0; c < 2; ++c) EXPECT_NEAR(predicted.probabilities[size_t(c)], expected[c].item<double>(), 1e-6);
  fs::remove(dir / "aggregator.json");
  EXPECT_THAT([&] { predict_images(dir, photos); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr("aggregator.json: the learned photo aggregator")));

  EXPECT_THAT([&] { run_experiment(config("learned_single", tables, 1), RunOptions{}); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr(
                  "aggregate = \"learned\" is fitted on a cross-validation's out-of-fold predictions, but "
                  "[data.split] folds is 0")));
}

}  // namespace
}  // namespace bachlab::host
