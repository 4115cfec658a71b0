// The whole path on a tiny synthetic dataset: run -> run folder -> eval -> predict, and a
// run resumed in a new "process" (config re-read from the run folder) ending where an
// uninterrupted run ends.
#include "host/cli/prediction_format.h"
#include "host/config/config.h"
#include "host/data/data.h"
#include "host/data/synth.h"
#include "host/util/atomic_file.h"
#include "host/util/html.h"
#include "host/train/run_folder.h"
#include "host/train/mlflow_log.h"
#include "host/train/runner.h"
#include "host/util/interrupt.h"
#include "tests/train/csv_rows.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <opencv2/imgcodecs.hpp>
#include <torch/script.h>

#include <chrono>
#include <csignal>
#include <algorithm>
#include <cstdlib>
#include <functional>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace bachlab::host {
namespace {

namespace fs = std::filesystem;

class RunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    folder_ = fs::temp_directory_path() /
              ("bachlab_run_test_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(folder_);
    fs::create_directories(folder_);
    // The runner looks in the config's folders and BACHLAB_PLUGIN_PATH, like `bachlab` does.
    setenv("BACHLAB_PLUGIN_PATH", (std::string(TRAIN_TEST_PLUGIN_DIR) + ":" + BACHLAB_TEST_PLUGIN_DIR).c_str(), 1);
  }
  void TearDown() override { fs::remove_all(folder_); }

  // Each test its own: tests run at once (ctest -j) must not race to publish the same
  // synthetic set; that race is tested on purpose in tests/data/synth_test.cpp.
  fs::path cache_dir() const { return folder_ / "cache"; }

  // `split`: the [data.split] table's settings.
  // `data`: more [data] lines.
  fs::path write_config(const std::string& name, int epochs,
                        const std::string& split = "train = 0.6\nval = 0.2\ntest = 0.2\n", const std::string& data = "") {
    const fs::path file = folder_ / (name + ".toml");
    std::ofstream(file) << "[experiment]\nseed = 5\noutput = \"runs\"\n"
                        << "[data]\nsource = \"synthetic\"\nimage_size = 16\nworkers = 1\ncache_dir = \""
                        << cache_dir().string() << "\"\n" << data
                        << "[data.synthetic]\nper_class = 10\nwidth = 48\nheight = 36\n"
                        << "[data.split]\n" << split
                        << "[model]\nplugin = \"tiny_cnn\"\n"
                        << "[optimizer]\nplugin = \"adam\"\nlr = 0.01\n"
                        << "[train]\nepochs = " << epochs << "\nbatch_size = 8\nthreads = 1\n";
    return file;
  }

  fs::path folder_;
};

TEST_F(RunTest, WritesTheWholeRunFolder) {
  RunSummary s = run_experiment(write_config("tiny", 3), RunOptions{});
  const fs::path dir = s.run_dir;
  EXPECT_EQ(dir.parent_path(), folder_ / "runs" / "tiny");
  for (const char* file : {"config.toml", "run.json", "split.csv", "history.csv", "metrics.json", "loss.png",
                           "accuracy.png", "confusion_matrix.png", "report.html", "checkpoints/best.pt",
                           "checkpoints/last.pt"})
    EXPECT_TRUE(fs::exists(dir / file)) << file;
  for (const auto& entry : fs::recursive_directory_iterator(dir))
    EXPECT_NE(entry.path().extension(), ".tmp") << "left behind: " << entry.path();

  EXPECT_EQ(s.history.size(), 3u);
  ASSERT_EQ(s.splits.size(), 3u);
  EXPECT_EQ(s.splits[0].size + s.splits[1].size + s.splits[2].size, 40);
  EXPECT_EQ(s.split("test")->size, 8);

  std::string history = read_file(dir / "history.csv");
  EXPECT_EQ(history.substr(0, history.find('\n')),
            "epoch,lr,train_loss,train_accuracy,train_auroc_micro,train_auroc_macro,val_loss,val_accuracy,"
            "val_auroc_micro,val_auroc_macro,seconds");
  EXPECT_EQ(std::count(history.begin(), history.end(), '\n'), 4);

  auto metrics = nlohmann::json::parse(read_file(dir / "metrics.json"));
  EXPECT_EQ(metrics["experiment"], "tiny");
  EXPECT_EQ(metrics["splits"]["test"]["accuracy"].get<double>(), s.split("test")->metrics.accuracy);
  EXPECT_EQ(metrics["splits"]["test"]["auroc_micro"].get<double>(), s.split("test")->metrics.auroc_micro);
  EXPECT_EQ(metrics["classes"], (std::vector<std::string>{"Normal", "Benign", "InSitu", "Invasive"}));
  RunSummary reread = run_summary_from_json(metrics, dir / "metrics.json");
  EXPECT_EQ(reread.split("val")->metrics.confusion, s.split("val")->metrics.confusion);

  cv::Mat loss = cv::imread((dir / "loss.png").string());
  EXPECT_EQ(loss.cols, 800);
  EXPECT_EQ(loss.rows, 480);
  std::string html = read_file(dir / "report.html");
  size_t images = 0;
  for (size_t at = html.find("<img alt="); at != std::string::npos; at = html.find("<img alt=", at + 1)) ++images;
  EXPECT_EQ(images, 3u);  // the figures; misclassified photos' thumbnails are <img class="thumb">
  EXPECT_NE(html.find("AUROC micro"), std::string::npos);

  std::string split = read_file(dir / "split.csv");
  EXPECT_EQ(std::count(split.begin(), split.end(), '\n'), 41);  // header + 40 photos
}

TEST_F(RunTest, ResumedRunEndsWithTheNumbersOfAnUninterruptedOne) {
  RunSummary full = run_experiment(write_config("whole", 4), RunOptions{});

  RunOptions first;
  first.overrides.epochs = 2;  // stands for a run killed after its second epoch
  RunSummary part = run_experiment(write_config("whole", 4), first);
  RunOptions again;
  again.resume = fs::path(part.run_dir);
  again.overrides.epochs = 4;
  RunSummary resumed = run_experiment("", again);

  EXPECT_EQ(resumed.run_dir, part.run_dir);
  ASSERT_EQ(resumed.history.size(), 4u);
  for (size_t e = 0; e < 4; ++e) {
    EXPECT_EQ(resumed.history[e].train.loss, full.history[e].train.loss) << "epoch " << e + 1;
    EXPECT_EQ(resumed.history[e].val.loss, full.history[e].val.loss) << "epoch " << e + 1;
  }
  for (const char* split : {"train", "val", "test"}) {
    EXPECT_EQ(resumed.split(split)->metrics.accuracy, full.split(split)->metrics.accuracy) << split;
    EXPECT_EQ(resumed.split(split)->metrics.auroc_micro, full.split(split)->metrics.auroc_micro) << split;
    EXPECT_EQ(resumed.split(split)->metrics.loss, full.split(split)->metrics.loss) << split;
  }
}

// [ensemble.<name>]: each member a complete cross-validation of the config with its
// overrides, in <run>/member-<name>, with the same folds; the run folder's out-of-fold
// probabilities are the members' mean photo by photo, and predict and eval on it average
// the members too. A killed ensemble resumes member by member.
TEST_F(RunTest, EnsembleAveragesItsMembersCrossValidationsAndResumesMemberByMember) {
  const fs::path config = write_config("ensemble", 1, "folds = 2\n");
  std::ofstream(config, std::ios::app) << "[ensemble.low]\noverrides = [\"optimizer.lr=0.003\"]\n"
                                       << "[ensemble.seeded]\noverrides = [\"experiment.seed=9\", \"~train.threads\"]\n";
  const RunSummary s = run_experiment(config, RunOptions{});
  const fs::path dir = s.run_dir;
  ASSERT_EQ(s.fold_val_accuracy.size(), 2u);
  const auto ensemble_param = std::find_if(s.params.begin(), s.params.end(), [](auto& p) { return p.first == "ensemble"; });
  ASSERT_NE(ensemble_param, s.params.end());
  EXPECT_EQ(ensemble_param->second, "low (optimizer.lr=0.003) + seeded (experiment.seed=9 ~train.threads)");
  const auto lr = std::find_if(s.params.begin(), s.params.end(), [](auto& p) { return p.first == "lr"; });
  EXPECT_EQ(lr->second, "0.01") << "the configured rate, not a member's";
  // The report says what the figures are and links the members' folds, which exist.
  const std::string report = read_file(fs::path(s.run_dir) / "report.html");
  EXPECT_NE(report.find("An ensemble of 2 cross-validations (low, seeded)"), std::string::npos);
  for (const char* link : {"member-low/fold-1/report.html", "member-seeded/fold-2/report.html"}) {
    EXPECT_NE(report.find("href=\"" + std::string(link) + "\""), std::string::npos) << link;
    EXPECT_TRUE(fs::exists(fs::path(s.run_dir) / link)) << link;
  }
  EXPECT_EQ(nlohmann::json::parse(read_file(fs::path(s.run_dir) / "metrics.json")).at("ensemble_members"),
            nlohmann::json({"low", "seeded"}));

  // The members' folds are the same photos, and the root's rows are their mean.
  std::map<std::string, std::vector<double>> sum;
  for (const char* member : {"member-low", "member-seeded"}) {
    for (const char* fold : {"fold-1", "fold-2"})
      EXPECT_EQ(read_file(dir / member / fold / "split.csv"), read_file(dir / "member-low" / fold / "split.csv"));
    for (const auto& row : csv_data_rows(read_file(dir / member / "predictions.csv"))) {
      auto& p = sum[row[0]];
      p.resize(4);
      for (size_t c = 0; c < 4; ++c) p[c] += std::stod(row[3 + c]) / 2;
    }
  }
  const auto low_seed = nlohmann::json::parse(read_file(dir / "member-low" / "metrics.json")).at("seed");
  EXPECT_NE(nlohmann::json::parse(read_file(dir / "member-seeded" / "metrics.json")).at("seed"), low_seed);
  int right = 0, rows = 0;
  for (const auto& row : csv_data_rows(read_file(dir / "predictions.csv"))) {
    ++rows;
    for (size_t c = 0; c < 4; ++c) EXPECT_NEAR(std::stod(row[3 + c]), sum.at(row[0])[c], 2e-6) << row[0];
    right += row[1] == row[2];
  }
  EXPECT_EQ(rows, 40);
  EXPECT_DOUBLE_EQ(right / 40.0, s.split("val")->metrics.accuracy);
  EXPECT_EQ(evaluate_run(dir).split("val")->metrics.confusion, s.split("val")->metrics.confusion);

  const fs::path png = folder_ / "photo.png";
  cv::imwrite(png.string(), cv::Mat(36, 48, CV_8UC3, cv::Scalar(150, 90, 170)));
  const auto both = predict_images(dir, {png}).at(0).probabilities;
  const auto low = predict_images(dir / "member-low", {png}).at(0).probabilities;
  const auto seeded = predict_images(dir / "member-seeded", {png}).at(0).probabilities;
  for (size_t c = 0; c < 4; ++c) EXPECT_NEAR(both[c], (low[c] + seeded[c]) / 2, 1e-9);

  // Killed in the second member's second fold: the first member is not trained again.
  const fs::path low_metrics = dir / "member-low" / "fold-1" / "metrics.json";
  const double low_seconds = run_summary_from_json(nlohmann::json::parse(read_file(low_metrics)), low_metrics).seconds;
  fs::remove_all(dir / "member-seeded" / "fold-2" / "checkpoints");
  fs::remove(dir / "member-seeded" / "fold-2" / "metrics.json");
  fs::remove(dir / "member-seeded" / "metrics.json");
  fs::remove(dir / "metrics.json");
  RunOptions resume;
  resume.resume = dir;
  const RunSummary resumed = run_experiment(config, resume);
  EXPECT_EQ(resumed.split("val")->metrics.confusion, s.split("val")->metrics.confusion);
  EXPECT_EQ(resumed.fold_val_accuracy, s.fold_val_accuracy);
  EXPECT_EQ(run_summary_from_json(nlohmann::json::parse(read_file(low_metrics)), low_metrics).seconds, low_seconds);

  // Mistakes are named before anything trains.
  auto error_of = [&](const std::string& name, const std::string& split, const std::string& tables) {
    const fs::path file = write_config(name, 1, split);
    std::ofstream(file, std::ios::app) << tables;
    try {
      run_experiment(file, RunOptions{});
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_THAT(error_of("one", "folds = 2\n", "[ensemble.only]\noverrides = [\"optimizer.lr=0.1\"]\n"),
              ::testing::HasSubstr("is the only member of [ensemble]"));
  EXPECT_THAT(error_of("nofolds", "train = 0.6\nval = 0.2\ntest = 0.2\n",
                       "[ensemble.a]\noverrides = []\n[ensemble.b]\noverrides = [\"optimizer.lr=0.1\"]\n"),
              ::testing::HasSubstr("[ensemble] averages the members' out-of-fold predictions"));
  EXPECT_THAT(error_of("splits", "folds = 2\n",
                       "[ensemble.a]\noverrides = [\"data.split.folds=3\"]\n[ensemble.b]\noverrides = []\n"),
              ::testing::HasSubstr("\"data.split.folds=3\": the members share the experiment and its folds"));
  EXPECT_THAT(error_of("badkey", "folds = 2\n",
                       "[ensemble.a]\noverrides = [\"optimizer.lrr=0.1\"]\n[ensemble.b]\noverrides = []\n"),
              ::testing::HasSubstr("lrr"));
}

// [data.split] group = "csv": the groups (patients) of the ground-truth CSV's third column
// never straddle a fold's training and validation parts; a photo without one is named.
TEST_F(RunTest, CsvGroupsKeepEachPatientInOneFold) {
  const fs::path photos = folder_ / "bach" / "Photos";
  const std::vector<std::pair<std::string, std::string>> classes = {
      {"Normal", "n"}, {"Benign", "b"}, {"InSitu", "is"}, {"Invasive", "iv"}};
  std::string csv = "file,class,patient\n";
  std::map<std::string, std::string> group_of;
  for (size_t c = 0; c < classes.size(); ++c) {
    fs::create_directories(photos / classes[c].first);
    for (int i = 0; i < 6; ++i) {
      const std::string file = classes[c].second + std::to_string(i) + ".tif";
      cv::imwrite((photos / classes[c].first / file).string(),
                  cv::Mat(36, 48, CV_8UC3, cv::Scalar(40 * double(c), 30 * i, 200)));
      // Patients hold two photos each.
      const std::string patient = "p" + std::to_string(c) + "-" + std::to_string(i / 2);
      group_of[classes[c].first + "/" + file] = patient;
      csv += file + "," + classes[c].first + "," + patient + "\n";
    }
  }
  write_file_atomic(photos / "microscopy_ground_truth.csv", csv);
  const fs::path config = folder_ / "csv_groups.toml";
  std::ofstream(config) << "[experiment]\nseed = 5\noutput = \"runs\"\n"
                        << "[data]\nroot = \"bach\"\nimage_size = 16\nworkers = 1\ncache_dir = \"cache\"\n"
                        << "[data.split]\nfolds = 3\ngroup = \"csv\"\n"
                        << "[model]\nplugin = \"tiny_cnn\"\n[optimizer]\nplugin = \"adam\"\n"
                        << "[train]\nepochs = 1\nbatch_size = 8\nthreads = 1\n";
  const RunSummary s = run_experiment(config, RunOptions{});
  std::set<std::string> validated;
  for (int k = 1; k <= 3; ++k) {
    std::map<std::string, std::set<std::string>> parts_of_patient;
    const fs::path split = fs::path(s.run_dir) / ("fold-" + std::to_string(k)) / "split.csv";
    for (const auto& row : csv_data_rows(read_file(split))) {
      parts_of_patient[group_of.at(row[1])].insert(row[0]);
      if (row[0] == "val") validated.insert(row[1]);
    }
    for (const auto& [patient, parts] : parts_of_patient)
      EXPECT_EQ(parts.size(), 1u) << patient << " is on both sides of fold " << k;
  }
  EXPECT_EQ(validated.size(), 24u);

  write_file_atomic(photos / "microscopy_ground_truth.csv", csv.substr(0, csv.rfind("iv5.tif")) + "iv5.tif,Invasive\n");
  EXPECT_THAT([&] { run_experiment(config, RunOptions{}); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr(
                  "microscopy_ground_truth.csv: [data.split] group = \"csv\" needs a group (patient or slide id) in the "
                  "third column of every row, but 1 of 24 photos have none (first: iv5.tif)")));
}

// What Ctrl-C's "resume with" names: a fold, a refit or an ensemble member's fold resumes
// through the run that holds it.
TEST_F(RunTest, TheOutermostRunFolderHoldsFoldsRefitsAndMembers) {
  const fs::path root = folder_ / "runs" / "x" / "20240101-120000";
  for (const fs::path& run : {root, root / "refit", root / "member-a", root / "member-a" / "fold-2"}) {
    fs::create_directories(run);
    write_file_atomic(run / "run.json", "{}");
  }
  EXPECT_EQ(outermost_run_folder(root), root);
  EXPECT_EQ(outermost_run_folder(root / "refit"), root);
  EXPECT_EQ(outermost_run_folder(root / "member-a" / "fold-2"), root);
  EXPECT_EQ(outermost_run_folder(root.string() + "/member-a/"), root);
}

// One writer per run folder (issue #22 item 3): the holds of one process share one lock,
// which every other process finds taken until the last hold ends. A fold's hold is its
// cross-validation's, so a whole CV is one writer.
TEST_F(RunTest, HoldsOfOneProcessShareTheRunFolderLockOthersWaitForTheLast) {
  const fs::path root = folder_ / "runs" / "x" / "20240101-120000";
  fs::create_directories(root / "fold-1");
  write_file_atomic(root / "run.json", "{}");
  write_file_atomic(root / "fold-1" / "run.json", "{}");
  auto taken_elsewhere = [&] {
    const std::string command = "flock --nonblock --conflict-exit-code 7 '" + (root / ".lock").string() + "' true";
    return WEXITSTATUS(std::system(command.c_str())) == 7;
  };
  auto cv = hold_run_folder(root);
  auto fold = hold_run_folder(root / "fold-1");
  EXPECT_EQ(cv, fold);
  EXPECT_TRUE(taken_elsewhere());
  cv.reset();
  EXPECT_TRUE(taken_elsewhere());
  fold.reset();
  EXPECT_FALSE(taken_elsewhere());
}

// Issue #22 LOW: photos.csv quotes names with commas, quotes and line breaks, records times
// as nanoseconds since 1970, and still reads a listing of an older version in its units.
TEST_F(RunTest, PhotosCsvQuotesOddNamesAndReadsOlderListings) {
  Dataset dataset;
  dataset.root = folder_ / "photos";
  fs::create_directories(dataset.root);
  for (const std::string name : {"a,b.png", "line\nbreak.png", "q\"uote.png"}) {
    dataset.files.push_back(dataset.root / name);
    std::ofstream(dataset.files.back()) << "bytes of " << name;
  }
  const fs::path run_dir = folder_ / "run";
  fs::create_directories(run_dir);
  const std::string listing = photos_listing(dataset, false);
  const auto rows = csv_rows(listing);
  ASSERT_EQ(rows.size(), 4u) << listing;
  EXPECT_EQ(rows[0], (std::vector<std::string>{"file", "size", "modified_ns", "crc32"}));
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(rows[i + 1].at(0), dataset.files[i].filename().string());
    EXPECT_GT(std::stoll(rows[i + 1].at(2)), 1600000000LL * 1000000000LL) << "not nanoseconds since 1970";
  }
  write_file_atomic(run_dir / kPhotosFile, listing);
  EXPECT_NO_THROW(check_same_photos(run_dir, dataset, false, "Resuming"));

  // A listing of an older version: std::filesystem clock counts, names unquoted.
  std::string older = "file,size,mtime,crc32\n";
  for (size_t i = 0; i < 3; ++i)
    older += csv_field(rows[i + 1][0]) + "," + rows[i + 1][1] + "," +
             std::to_string(fs::last_write_time(dataset.files[i]).time_since_epoch().count()) + "," + rows[i + 1][3] +
             "\n";
  write_file_atomic(run_dir / kPhotosFile, older);
  EXPECT_NO_THROW(check_same_photos(run_dir, dataset, false, "Resuming"));
  // The same size, other bytes, a new time: named, comma and all.
  std::ofstream(dataset.files[0]) << "BYTES OF a,b.png";
  fs::last_write_time(dataset.files[0], fs::last_write_time(dataset.files[0]) + std::chrono::seconds(5));
  for (const std::string& written : {listing, older}) {
    write_file_atomic(run_dir / kPhotosFile, written);
    try {
      check_same_photos(run_dir, dataset, false, "Resuming");
      ADD_FAILURE() << "a changed photo was taken for the same";
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), ::testing::HasSubstr("(1 changed: a,b.png (content changed))"));
    }
  }
}

TEST_F(RunTest, ResumeRefusesAnotherSeedAndAFolderThatIsNoRun) {
  RunSummary s = run_experiment(write_config("seeded", 1), RunOptions{});
  RunOptions options;
  options.resume = fs::path(s.run_dir);
  options.overrides.seed = 6;
  try {
    run_experiment("", options);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), s.run_dir + ": --seed 6 differs from the seed the run started with; a resumed "
                                                 "run keeps its seed. Drop --seed, or start a new run without --resume");
  }
  options.overrides.seed.reset();
  options.resume = folder_;
  try {
    run_experiment("", options);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), folder_.string() +
                                         ": not a run folder (it has no run.json); pass a folder made by `bachlab "
                                         "run`, such as runs/<experiment>/<timestamp>");
  }
}

TEST_F(RunTest, EvalReproducesTheRunsFinalNumbers) {
  RunSummary s = run_experiment(write_config("again", 2), RunOptions{});
  RunSummary e = evaluate_run(s.run_dir);
  for (const char* split : {"train", "val", "test"}) {
    EXPECT_EQ(e.split(split)->metrics.accuracy, s.split(split)->metrics.accuracy) << split;
    EXPECT_EQ(e.split(split)->metrics.auroc_macro, s.split(split)->metrics.auroc_macro) << split;
    EXPECT_EQ(e.split(split)->metrics.confusion, s.split(split)->metrics.confusion) << split;
  }
}

TEST_F(RunTest, PredictPrintsOneRowPerImageInEachFormat) {
  RunSummary s = run_experiment(write_config("predictor", 1), RunOptions{});
  const fs::path png = folder_ / "photo.png";
  const fs::path jpg = folder_ / "photo.jpg";
  cv::Mat image(30, 40, CV_8UC3, cv::Scalar(200, 120, 180));
  cv::imwrite(png.string(), image);
  cv::imwrite(jpg.string(), image);
  std::vector<std::string> classes;
  auto predictions = predict_images(s.run_dir, {png, jpg}, &classes);
  ASSERT_EQ(predictions.size(), 2u);
  EXPECT_EQ(classes, (std::vector<std::string>{"Normal", "Benign", "InSitu", "Invasive"}));
  for (const auto& p : predictions) {
    double sum = 0;
    for (double v : p.probabilities) sum += v;
    EXPECT_NEAR(sum, 1.0, 1e-5);
  }

  ImagePrediction fixed{"a,b.png", "Benign", {0.1, 0.6, 0.2, 0.1}};
  EXPECT_EQ(cli::format_predictions({fixed}, classes, "csv"),
            "image,predicted,Normal,Benign,InSitu,Invasive\n\"a,b.png\",Benign,0.100000,0.600000,0.200000,0.100000\n");
  EXPECT_EQ(cli::format_predictions({fixed}, classes, "table"),
            "image    predicted  Normal  Benign  InSitu  Invasive\n"
            "a,b.png  Benign     0.1000  0.6000  0.2000    0.1000\n");
  auto json = nlohmann::json::parse(cli::format_predictions({fixed}, classes, "json"));
  EXPECT_EQ(json[0]["image"], "a,b.png");
  EXPECT_EQ(json[0]["predicted"], "Benign");
  EXPECT_DOUBLE_EQ(json[0]["probabilities"]["InSitu"].get<double>(), 0.2);
  EXPECT_THROW(cli::format_predictions({fixed}, classes, "xml"), Error);
}

// k-fold cross-validation: each fold a complete run folder validating on its own fold; the
// run's "val" is every image predicted once by the model that did not train on it, so its
// accuracy is the folds' accuracies weighted by fold size. A killed cross-validation resumes
// without retraining finished folds and ends with the same numbers; eval re-pools; predict
// asks for one fold's model.
TEST_F(RunTest, CrossValidationPoolsOutOfFoldPredictionsAndResumesFoldByFold) {
  const fs::path config = write_config("cv", 2, "folds = 3\n");
  RunSummary s = run_experiment(config, RunOptions{});
  const fs::path dir = s.run_dir;
  ASSERT_EQ(s.fold_val_accuracy.size(), 3u);
  ASSERT_NE(s.split("val"), nullptr);
  EXPECT_EQ(s.split("val")->size, 40);
  EXPECT_EQ(s.split("test"), nullptr);
  EXPECT_EQ(s.history.size(), 2u);

  std::set<std::string> validated;
  double correct = 0;
  std::vector<double> fold_seconds;
  for (int k = 1; k <= 3; ++k) {
    const fs::path fold = dir / ("fold-" + std::to_string(k));
    RunSummary f = run_summary_from_json(nlohmann::json::parse(read_file(fold / "metrics.json")), fold / "metrics.json");
    EXPECT_EQ(f.split("val")->metrics.accuracy, s.fold_val_accuracy[size_t(k - 1)]);
    correct += f.split("val")->metrics.accuracy * static_cast<double>(f.split("val")->size);
    fold_seconds.push_back(f.history.front().seconds);
    std::istringstream split(read_file(fold / "split.csv"));
    for (std::string line; std::getline(split, line);)
      if (line.rfind("val,", 0) == 0) EXPECT_TRUE(validated.insert(line).second) << line << " validated twice";
  }
  EXPECT_EQ(validated.size(), 40u) << "every image is validated exactly once";
  EXPECT_NEAR(s.split("val")->metrics.accuracy, correct / 40.0, 1e-12);
  auto metrics = nlohmann::json::parse(read_file(dir / "metrics.json"));
  EXPECT_EQ(metrics["fold_val_accuracy"].get<std::vector<double>>(), s.fold_val_accuracy);
  EXPECT_TRUE(fs::exists(dir / "confusion_matrix.png"));

  // Killed during the third fold, before the pooled summary: resume.
  fs::remove_all(dir / "fold-3" / "checkpoints");
  fs::remove(dir / "fold-3" / "metrics.json");
  fs::remove(dir / "metrics.json");
  RunOptions resume;
  resume.resume = dir;
  RunSummary resumed = run_experiment(config, resume);
  EXPECT_EQ(resumed.run_dir, s.run_dir);
  EXPECT_EQ(resumed.fold_val_accuracy, s.fold_val_accuracy);
  EXPECT_EQ(resumed.split("val")->metrics.confusion, s.split("val")->metrics.confusion);
  EXPECT_EQ(resumed.split("val")->metrics.auroc_micro, s.split("val")->metrics.auroc_micro);
  for (int k = 1; k <= 2; ++k) {
    const fs::path file = dir / ("fold-" + std::to_string(k)) / "metrics.json";
    EXPECT_EQ(run_summary_from_json(nlohmann::json::parse(read_file(file)), file).history.front().seconds,
              fold_seconds[size_t(k - 1)])
        << "fold " << k << " was trained again";
  }

  RunSummary evaluated = evaluate_run(dir);
  EXPECT_EQ(evaluated.split("val")->metrics.accuracy, s.split("val")->metrics.accuracy);
  EXPECT_EQ(evaluated.fold_val_accuracy, s.fold_val_accuracy);

  // The cross-validation's folder predicts with its fold models' mean
  // (PatchRecipeTest.PredictOnACrossValidationAveragesItsFoldModels checks the numbers);
  // a fold that never trained makes that ensemble incomplete, which is refused.
  fs::rename(dir / "fold-2" / "checkpoints", dir / "fold-2" / "hidden");
  try {
    predict_images(dir, {dir / "x.png"});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), (dir / "fold-2").string() +
                                         ": fold 2 of 3 has no checkpoint, so the fold ensemble is incomplete; "
                                         "finish the cross-validation with `bachlab run --resume " +
                                         dir.string() + "`");
  }
}

// [train] refit: after the folds and their pooled summary, one more model trains on every
// photo in <run>/refit; predict on the run folder then uses it instead of the fold
// ensemble. Without folds the key is refused.
TEST_F(RunTest, RefitTrainsOnEveryPhotoAfterTheFoldsAndPredictUsesIt) {
  const fs::path config = write_config("refit", 1, "folds = 2\n");
  std::ofstream(config, std::ios::app) << "refit = true\n";  // [train] is the file's last table
  RunSummary s = run_experiment(config, RunOptions{});
  const fs::path dir = s.run_dir;
  const fs::path refit = dir / "refit";
  ASSERT_TRUE(fs::exists(refit / "checkpoints" / "last.pt"));
  EXPECT_TRUE(nlohmann::json::parse(read_file(refit / "run.json")).value("refit", false));
  int train_rows = 0, other_rows = 0;
  std::istringstream split(read_file(refit / "split.csv"));
  std::string line;
  std::getline(split, line);  // header
  while (std::getline(split, line)) (line.rfind("train,", 0) == 0 ? train_rows : other_rows)++;
  EXPECT_EQ(train_rows, 40) << "the refit trains on every photo";
  EXPECT_EQ(other_rows, 0);
  const RunSummary refit_summary =
      run_summary_from_json(nlohmann::json::parse(read_file(refit / "metrics.json")), refit / "metrics.json");
  ASSERT_NE(refit_summary.split("train"), nullptr);
  EXPECT_EQ(refit_summary.split("train")->size, 40);

  const fs::path png = folder_ / "photo.png";
  cv::imwrite(png.string(), cv::Mat(36, 48, CV_8UC3, cv::Scalar(150, 90, 170)));
  EXPECT_EQ(predict_images(dir, {png}).at(0).probabilities, predict_images(refit, {png}).at(0).probabilities)
      << "the run folder predicts with its refit model";

  const fs::path single = write_config("refit_single", 1);
  std::ofstream(single, std::ios::app) << "refit = true\n";
  std::string message = "(no error)";
  try {
    run_experiment(single, RunOptions{});
  } catch (const Error& e) {
    message = e.what();
  }
  EXPECT_THAT(message,
              ::testing::HasSubstr("refit retrains on every photo after a cross-validation, but [data.split] folds is 0"));
}

// [data] stain_normalize without a reference: the target of every fold (and of a single
// split) is fitted on that part's training photos only, equal to a fit computed here
// independently on those rows, and saved in run.json for predict.
TEST_F(RunTest, StainTargetIsFittedOnEachFoldsTrainingPhotosOnly) {
  const std::string stain = "stain_normalize = \"macenko\"\n";
  RunSummary cv = run_experiment(write_config("stain_cv", 1, "folds = 2\n", stain), RunOptions{});
  RunSummary single = run_experiment(write_config("stain_split", 1, "train = 0.6\nval = 0.2\ntest = 0.2\n", stain),
                                     RunOptions{});

  DataConfig data;
  data.source = DataSource::synthetic;
  data.image_size = 16;
  data.workers = 1;
  data.cache_dir = cache_dir();
  data.synthetic.per_class = 10;
  data.synthetic.width = 48;
  data.synthetic.height = 36;
  const PreparedData plain = prepare_dataset(discover_dataset(data), data);
  const torch::Tensor labels = plain.labels.contiguous();
  const std::vector<int64_t> list(labels.data_ptr<int64_t>(), labels.data_ptr<int64_t>() + labels.numel());
  auto saved = [](const fs::path& dir) {
    return stain_target_from_json(nlohmann::json::parse(read_file(dir / "run.json")).at("stain_target"));
  };
  const std::vector<Split> folds = stratified_kfold(list, 2, 5);
  std::vector<std::string> keys;
  for (int k = 0; k < 2; ++k) {
    const StainTarget target = saved(fs::path(cv.run_dir) / ("fold-" + std::to_string(k + 1)));
    EXPECT_EQ(target.key(), fit_stain_target(StainMethod::macenko, plain.images, folds[size_t(k)].train).key()) << k;
    EXPECT_EQ(target.fitted_on, "20 training photos");
    keys.push_back(target.key());
  }
  EXPECT_NE(keys[0], keys[1]) << "each fold fits its own target";
  const Split split = stratified_split(list, 0.6, 0.2, 0.2, 5);
  const StainTarget target = saved(single.run_dir);
  EXPECT_EQ(target.key(), fit_stain_target(StainMethod::macenko, plain.images, split.train).key());
  EXPECT_EQ(target.fitted_on, "24 training photos");
  // Predict normalises a photo with the saved target, as training did.
  const auto predictions = predict_images(single.run_dir, {plain.dataset.files[0]});
  ASSERT_EQ(predictions.size(), 1u);
  EXPECT_EQ(predictions[0].probabilities.size(), 4u);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// A run folder is self-contained: a base config's relative data root is saved resolved, so
// eval reads the base's photos, not a same-named folder beside the leaf config (which the
// split check, comparing file names only, could not tell apart), and still does after the
// run folder is moved. Photos changed since the run are refused by resume and eval.
TEST_F(RunTest, ARunFolderKeepsItsOwnDataWhenMovedAndRefusesPhotosThatChanged) {
  SynthOptions photos;
  photos.out = folder_ / "shared" / "data";
  photos.per_class = 10;
  photos.width = 48;
  photos.height = 36;
  photos.workers = 1;
  generate_synthetic_dataset(photos);
  SynthOptions decoy = photos;  // the same file names, other pixels
  decoy.out = folder_ / "exp" / "data";
  decoy.seed = 1;
  generate_synthetic_dataset(decoy);
  std::ofstream(folder_ / "shared" / "base.toml")
      << "[data]\nroot = \"data\"\nimage_size = 16\nworkers = 1\ncache_dir = \"" << cache_dir().string() << "\"\n"
      << "[model]\nplugin = \"tiny_cnn\"\n[optimizer]\nplugin = \"adam\"\nlr = 0.01\n"
      << "[train]\nepochs = 1\nbatch_size = 8\nthreads = 1\n";
  const fs::path leaf = folder_ / "exp" / "leaf.toml";
  std::ofstream(leaf) << "extends = \"../shared/base.toml\"\n[experiment]\nseed = 5\n";
  RunSummary s = run_experiment(leaf, RunOptions{});

  Config saved = Config::parse(read_file(fs::path(s.run_dir) / "config.toml"), "saved.toml");
  EXPECT_EQ(saved.table("data").get_string("root", ""), (folder_ / "shared" / "data").string());

  const fs::path moved = folder_ / "moved";
  fs::rename(s.run_dir, moved);
  RunSummary e = evaluate_run(moved);
  for (const char* split : {"train", "val", "test"}) {
    EXPECT_EQ(e.split(split)->metrics.loss, s.split(split)->metrics.loss) << split;
    EXPECT_EQ(e.split(split)->metrics.confusion, s.split(split)->metrics.confusion) << split;
  }

  // Every photo touched (copied, synced): a new modification time, the same bytes, the same data.
  for (const auto& entry : fs::recursive_directory_iterator(folder_ / "shared" / "data" / "Photos"))
    if (entry.is_regular_file())
      fs::last_write_time(entry.path(), fs::last_write_time(entry.path()) + std::chrono::seconds(3));
  EXPECT_EQ(evaluate_run(moved).split("test")->metrics.confusion, s.split("test")->metrics.confusion);
  // A photos.csv of an older version has no checksums: a new modification time is a change.
  const std::string listing = read_file(moved / "photos.csv");
  std::string without_checksums;
  std::istringstream lines(listing);
  for (std::string line; std::getline(lines, line);) without_checksums += line.substr(0, line.rfind(',')) + "\n";
  write_file_atomic(moved / "photos.csv", without_checksums);
  EXPECT_THAT(error_of([&] { evaluate_run(moved); }), ::testing::HasSubstr("(modified since)"));
  write_file_atomic(moved / "photos.csv", listing);

  // One photo replaced by another of the same name and size.
  const fs::path changed = folder_ / "shared" / "data" / "Photos" / "Benign" / "b003.tif";
  fs::copy_file(folder_ / "exp" / "data" / "Photos" / "Benign" / "b003.tif", changed,
                fs::copy_options::overwrite_existing);
  fs::last_write_time(changed, fs::last_write_time(changed) + std::chrono::seconds(5));
  const std::string refused = error_of([&] { evaluate_run(moved); });
  EXPECT_EQ(refused, (moved / "photos.csv").string() + ": the photos under " +
                         (folder_ / "shared" / "data" / "Photos").string() +
                         " are not those this run was trained on (1 changed: Benign/b003.tif (content changed)). "
                         "Evaluating would use other data; restore the original photos, or start a new run");
  RunOptions resume;
  resume.resume = moved;
  EXPECT_THAT(error_of([&] { run_experiment("", resume); }),
              ::testing::HasSubstr("(1 changed: Benign/b003.tif (content changed)). Resuming would use other data"));
}

TEST_F(RunTest, PhotosSkippedAsBadAreListedInMetricsAndTheReport) {
  SynthOptions photos;
  photos.out = folder_ / "data";
  photos.per_class = 10;
  photos.width = 48;
  photos.height = 36;
  photos.workers = 1;
  generate_synthetic_dataset(photos);
  const fs::path bad = folder_ / "data" / "Photos" / "Normal" / "n002.tif";
  std::ofstream(bad, std::ios::binary | std::ios::trunc) << std::string("II*\0\x08\0\0\0garbage", 15);
  const fs::path config = folder_ / "skip.toml";
  std::ofstream(config) << "[data]\nroot = \"data\"\non_bad_image = \"skip\"\nimage_size = 16\nworkers = 1\n"
                        << "cache_dir = \"" << cache_dir().string() << "\"\n"
                        << "[model]\nplugin = \"tiny_cnn\"\n[train]\nepochs = 1\nbatch_size = 8\nthreads = 1\n";
  RunSummary s = run_experiment(config, RunOptions{});
  ASSERT_EQ(s.skipped.size(), 1u);
  EXPECT_EQ(s.skipped[0].rfind(bad.string() + ": ", 0), 0u) << s.skipped[0];
  const auto metrics = nlohmann::json::parse(read_file(fs::path(s.run_dir) / "metrics.json"));
  EXPECT_EQ(metrics.at("skipped"), nlohmann::json(s.skipped));
  EXPECT_NE(read_file(fs::path(s.run_dir) / "report.html").find("1 photo was left out"), std::string::npos);
  EXPECT_EQ(run_summary_from_json(metrics, "metrics.json").skipped, s.skipped);
}

// predictions.csv holds every photo of every split once, with the split.csv's file and
// class, the most probable class as the prediction, and the split's accuracy; report.html
// shows the test split's mistakes with a thumbnail each.
TEST_F(RunTest, PredictionsCsvHasEveryPhotoOnceAndTheReportShowsTheMistakes) {
  RunSummary s = run_experiment(write_config("per_photo", 2), RunOptions{});
  const fs::path dir = s.run_dir;
  std::string header;
  const auto rows = csv_data_rows(read_file(dir / "predictions.csv"), &header);
  EXPECT_EQ(header, "file,true_class,predicted_class,Normal,Benign,InSitu,Invasive,split,fold");
  ASSERT_EQ(rows.size(), 40u);
  std::set<std::string> from_split;
  for (const auto& row : csv_data_rows(read_file(dir / "split.csv")))
    from_split.insert(row[0] + "," + row[1] + "," + row[2]);
  const std::vector<std::string> classes = {"Normal", "Benign", "InSitu", "Invasive"};
  int test_rows = 0, test_right = 0, test_wrong = 0;
  for (const auto& row : rows) {
    ASSERT_EQ(row.size(), 9u);
    EXPECT_EQ(from_split.count(row[7] + "," + row[0] + "," + row[1]), 1u) << row[0] << " is not in split.csv so";
    std::vector<double> p;
    for (int c = 3; c < 7; ++c) p.push_back(std::stod(row[size_t(c)]));
    EXPECT_NEAR(p[0] + p[1] + p[2] + p[3], 1.0, 1e-5);
    EXPECT_EQ(row[2], classes[size_t(std::max_element(p.begin(), p.end()) - p.begin())]);
    EXPECT_EQ(row[8], "");
    if (row[7] == "test") {
      ++test_rows;
      (row[1] == row[2] ? test_right : test_wrong)++;
    }
  }
  EXPECT_EQ(test_rows, 8);
  EXPECT_DOUBLE_EQ(test_right / 8.0, s.split("test")->metrics.accuracy);

  const std::string html = read_file(dir / "report.html");
  EXPECT_NE(html.find("<h2>Misclassified photos (test)</h2>\n<p>" + std::to_string(test_wrong) + " of 8 photos"),
            std::string::npos)
      << html;
  size_t thumbnails = 0;
  for (size_t at = html.find("<img class=\"thumb\""); at != std::string::npos;
       at = html.find("<img class=\"thumb\"", at + 1))
    ++thumbnails;
  EXPECT_EQ(thumbnails, size_t(test_wrong));
}

// A cross-validation's folder holds the pooled out-of-fold predictions: every photo once,
// in the fold that validated it.
TEST_F(RunTest, CrossValidationFolderHasThePooledOutOfFoldPredictions) {
  RunSummary s = run_experiment(write_config("cv_photos", 1, "folds = 2\n"), RunOptions{});
  const auto rows = csv_data_rows(read_file(fs::path(s.run_dir) / "predictions.csv"));
  ASSERT_EQ(rows.size(), 40u);
  std::set<std::string> seen;
  int right = 0;
  for (const auto& row : rows) {
    EXPECT_EQ(row[7], "val");
    EXPECT_TRUE(seen.insert(row[0]).second) << row[0] << " twice";
    std::set<std::string> fold_val;
    for (const auto& line : csv_data_rows(read_file(fs::path(s.run_dir) / ("fold-" + row[8]) / "split.csv")))
      if (line[0] == "val") fold_val.insert(line[1]);
    EXPECT_EQ(fold_val.count(row[0]), 1u) << row[0] << " is not in fold " << row[8] << "'s validation part";
    right += row[1] == row[2];
  }
  EXPECT_DOUBLE_EQ(right / 40.0, s.split("val")->metrics.accuracy);
}

// Issue #21 item 3: the exported model.pt, loaded with torch::jit::load (no bachlab code),
// fed a photo preprocessed as preprocessing.json says, gives predict's probabilities; a
// cross-validation without a refit is refused, naming a fold to export instead.
TEST_F(RunTest, AnExportedModelGivesPredictsProbabilitiesWithoutBachlab) {
  RunSummary s = run_experiment(write_config("exported", 2), RunOptions{});
  const ExportedModel exported = export_model(s.run_dir, folder_ / "export");
  EXPECT_LE(exported.max_difference, 1e-5);
  const auto json = nlohmann::json::parse(read_file(exported.preprocessing));
  EXPECT_EQ(json.at("input").at("S"), 16);
  EXPECT_EQ(json.at("resize").at("image_size"), 16);
  EXPECT_EQ(json.at("classes").at(0), "Normal");

  std::vector<fs::path> photos;
  for (const auto& entry : fs::recursive_directory_iterator(cache_dir()))
    if (entry.path().extension() == ".tif") photos.push_back(entry.path());
  std::sort(photos.begin(), photos.end());
  photos.resize(3);
  const auto predicted = predict_images(s.run_dir, photos);
  torch::jit::Module model = torch::jit::load(exported.model.string());
  const RunFile run = read_run_file(s.run_dir);
  Config saved = load_run_config(s.run_dir, run);
  const DataConfig data = read_data_config(saved);
  for (size_t i = 0; i < photos.size(); ++i) {
    // Decode, resize to image_size (INTER_AREA as it shrinks), to [0,1]: the JSON's steps.
    const torch::Tensor x = preprocess_photo(photos[i], data, std::nullopt).to(torch::kFloat32).div(255).unsqueeze(0);
    const torch::Tensor p = model.forward({x}).toTensor();
    ASSERT_EQ(p.size(1), 4);
    for (int64_t c = 0; c < 4; ++c)
      EXPECT_NEAR(p[0][c].item<double>(), predicted[i].probabilities[size_t(c)], 1e-5) << photos[i] << " class " << c;
  }

  RunSummary folds = run_experiment(write_config("folds", 1, "folds = 2\n"), RunOptions{});
  EXPECT_THAT(error_of([&] { export_model(folds.run_dir, folder_ / "export2"); }),
              ::testing::HasSubstr("predicts with its 2 fold models, which one TorchScript file does not hold; export "
                                   "one fold (" + folds.run_dir + "/fold-1)"));
  EXPECT_FALSE(fs::exists(folder_ / "export2" / "model.pt"));
}


// --- [experiment] mlflow: the run in an MLflow file store (host/train/mlflow_log.h) ---

// What the MLflow run of `run_dir` holds, read as MLflow's FileStore reads it.
struct MlflowRunFiles {
  fs::path store, experiment, run;
  std::string run_id;
  std::string meta() const { return read_file(run / "meta.yaml"); }
  std::string param(const std::string& key) const { return read_file(run / "params" / key); }
  std::string tag(const std::string& key) const { return read_file(run / "tags" / key); }
  // Each "timestamp value step" line of a metric file.
  std::vector<std::tuple<int64_t, double, int64_t>> metric(const std::string& name) const {
    std::vector<std::tuple<int64_t, double, int64_t>> lines;
    std::istringstream text(read_file(run / "metrics" / name));
    for (std::string line; std::getline(text, line);) {
      std::istringstream fields(line);
      int64_t time = 0, step = 0;
      double value = 0;
      std::string rest;
      EXPECT_TRUE(fields >> time >> value >> step) << name << ": " << line;
      EXPECT_FALSE(fields >> rest) << name << ": " << line;
      lines.emplace_back(time, value, step);
    }
    return lines;
  }
};

MlflowRunFiles mlflow_run_of(const fs::path& run_dir) {
  const auto record = nlohmann::json::parse(read_file(run_dir / kMlflowRunFile));
  MlflowRunFiles out;
  out.store = record.at("store").get<std::string>();
  out.experiment = out.store / record.at("experiment_id").get<std::string>();
  out.run_id = record.at("run_id").get<std::string>();
  out.run = out.experiment / out.run_id;
  return out;
}

// The value of `key` in a meta.yaml, as written.
std::string yaml_field(const std::string& yaml, const std::string& key) {
  std::istringstream lines(yaml);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(key + ": ", 0) == 0) return line.substr(key.size() + 2);
  return "(none)";
}

// The layout MLflow's FileStore reads (mlflow/store/tracking/file_store.py): the store with
// its Default experiment, the experiment found by name, the run's meta.yaml fields, the
// config's values as params, each epoch's metrics as "timestamp value step" lines, the
// final test figures; a resume with more epochs continues the same MLflow run.
TEST_F(RunTest, MlflowLogIsAnMlflowFileStoreRunAndAResumeContinuesIt) {
  const fs::path store = folder_ / "mlruns";
  RunOptions options;
  options.config_overrides = {"experiment.mlflow=" + store.string()};
  options.overrides.epochs = 2;
  RunSummary s = run_experiment(write_config("tracked", 3), options);
  const MlflowRunFiles m = mlflow_run_of(s.run_dir);
  EXPECT_EQ(m.store, store);

  // The store as MLflow makes it: experiment 0 "Default", a .trash folder; ours by name.
  EXPECT_EQ(yaml_field(read_file(store / "0" / "meta.yaml"), "name"), "'Default'");
  EXPECT_TRUE(fs::is_directory(store / ".trash"));
  const std::string experiment = read_file(m.experiment / "meta.yaml");
  EXPECT_EQ(yaml_field(experiment, "name"), "'tracked'");
  EXPECT_EQ(yaml_field(experiment, "experiment_id"), "'" + m.experiment.filename().string() + "'");
  EXPECT_EQ(yaml_field(experiment, "lifecycle_stage"), "active");
  EXPECT_EQ(yaml_field(experiment, "artifact_location"), "file://" + m.experiment.string());
  for (const char* field : {"creation_time", "last_update_time"})
    EXPECT_GT(std::stoll(yaml_field(experiment, field)), 1600000000000) << field;

  const std::string meta = m.meta();
  EXPECT_EQ(m.run_id.size(), 32u);
  EXPECT_EQ(yaml_field(meta, "run_id"), "'" + m.run_id + "'");
  EXPECT_EQ(yaml_field(meta, "run_uuid"), "'" + m.run_id + "'");
  EXPECT_EQ(yaml_field(meta, "experiment_id"), "'" + m.experiment.filename().string() + "'");
  EXPECT_EQ(yaml_field(meta, "run_name"), "'" + fs::path(s.run_dir).filename().string() + "'");
  EXPECT_EQ(yaml_field(meta, "status"), "3") << "FINISHED";
  EXPECT_EQ(yaml_field(meta, "lifecycle_stage"), "active");
  EXPECT_EQ(yaml_field(meta, "source_type"), "4") << "LOCAL";
  EXPECT_EQ(yaml_field(meta, "artifact_uri"), "file://" + (m.run / "artifacts").string());
  EXPECT_EQ(yaml_field(meta, "tags"), "[]");
  const int64_t start = std::stoll(yaml_field(meta, "start_time"));
  const int64_t end = std::stoll(yaml_field(meta, "end_time"));
  EXPECT_GT(start, 1600000000000);
  EXPECT_GE(end, start);
  EXPECT_EQ(m.tag("mlflow.runName"), fs::path(s.run_dir).filename().string());
  EXPECT_FALSE(fs::exists(m.run / "tags" / "mlflow.parentRunId"));

  // Params: every value of the saved config, strings as text, others as TOML writes them.
  EXPECT_EQ(m.param("model.plugin"), "tiny_cnn");
  EXPECT_EQ(m.param("train.epochs"), "3");
  EXPECT_EQ(m.param("optimizer.lr"), "0.01");
  EXPECT_EQ(m.param("experiment.mlflow"), store.string());

  // Metrics: one line per epoch, step = epoch, the values of the history exactly.
  auto val_loss = m.metric("val_loss");
  ASSERT_EQ(val_loss.size(), 2u);
  for (size_t e = 0; e < 2; ++e) {
    EXPECT_EQ(std::get<2>(val_loss[e]), static_cast<int64_t>(e + 1));
    EXPECT_EQ(std::get<1>(val_loss[e]), s.history[e].val.loss);
    EXPECT_GE(std::get<0>(val_loss[e]), start);
  }
  for (const char* name : {"lr", "train_loss", "train_accuracy", "val_accuracy", "val_auroc_micro", "epoch_seconds"})
    EXPECT_EQ(m.metric(name).size(), 2u) << name;
  auto test_accuracy = m.metric("final_test_accuracy");
  ASSERT_EQ(test_accuracy.size(), 1u);
  EXPECT_EQ(std::get<1>(test_accuracy[0]), s.split("test")->metrics.accuracy);
  EXPECT_EQ(std::get<2>(test_accuracy[0]), 2);
  EXPECT_EQ(m.metric("final_val_auroc_micro").size(), 1u);

  // As if killed after logging an epoch its checkpoint does not hold (a stale step-3 line)
  // and before logging one it does (train_loss without step 2): the resume keeps one line
  // per epoch the checkpoint holds and logs the next afresh.
  std::ofstream(m.run / "metrics" / "val_loss", std::ios::app) << "1 99.0 3\n";
  const auto train_loss = m.metric("train_loss");
  std::ofstream(m.run / "metrics" / "train_loss") << std::get<0>(train_loss[0]) << " " << std::get<1>(train_loss[0])
                                                  << " 1\n";
  // Resumed to 3 epochs: the same MLflow run, its first lines kept as they were, one more epoch.
  RunOptions again;
  again.resume = fs::path(s.run_dir);
  again.overrides.epochs = 3;
  RunSummary resumed = run_experiment("", again);
  const MlflowRunFiles r = mlflow_run_of(resumed.run_dir);
  EXPECT_EQ(r.run_id, m.run_id);
  EXPECT_EQ(std::distance(fs::directory_iterator(m.experiment), fs::directory_iterator()), 2)
      << "meta.yaml and the one run";
  auto val_loss_after = r.metric("val_loss");
  ASSERT_EQ(val_loss_after.size(), 3u);
  EXPECT_EQ(val_loss_after[0], val_loss[0]);
  EXPECT_EQ(val_loss_after[1], val_loss[1]);
  EXPECT_EQ(std::get<2>(val_loss_after[2]), 3);
  EXPECT_EQ(std::get<1>(val_loss_after[2]), resumed.history[2].val.loss);
  auto train_loss_after = r.metric("train_loss");
  ASSERT_EQ(train_loss_after.size(), 3u);
  EXPECT_EQ(std::get<2>(train_loss_after[1]), 2);
  EXPECT_EQ(std::get<1>(train_loss_after[1]), resumed.history[1].train.loss);
  EXPECT_EQ(yaml_field(r.meta(), "status"), "3");
  EXPECT_EQ(yaml_field(r.meta(), "start_time"), std::to_string(start));
  auto final_after = r.metric("final_test_accuracy");
  ASSERT_EQ(final_after.size(), 2u);
  EXPECT_EQ(std::get<2>(final_after[1]), 3);
}

// Ctrl-C: the MLflow run says KILLED; its resume makes it RUNNING and then FINISHED, the
// same run. A log destroyed before its end with no stop request says FAILED.
TEST_F(RunTest, AStoppedRunIsKilledInMlflowAndItsResumeFinishesIt) {
  const fs::path store = folder_ / "mlruns";
  RunOptions options;
  options.config_overrides = {"experiment.mlflow=" + store.string()};
  fs::path run_dir;
  {
    InterruptScope scope;
    std::raise(SIGINT);  // the request the first batch sees
    try {
      run_experiment(write_config("stopped", 1), options);
      FAIL() << "expected Interrupted";
    } catch (const Interrupted& stop) {
      run_dir = stop.resume_dir;
    }
  }
  const MlflowRunFiles m = mlflow_run_of(run_dir);
  EXPECT_EQ(yaml_field(m.meta(), "status"), "5") << "KILLED";
  EXPECT_NE(yaml_field(m.meta(), "end_time"), "null");
  EXPECT_FALSE(fs::exists(m.run / "metrics" / "val_loss"));

  InterruptScope cleared;  // a new scope forgets the request
  RunOptions again;
  again.resume = run_dir;
  run_experiment("", again);
  EXPECT_EQ(mlflow_run_of(run_dir).run_id, m.run_id);
  EXPECT_EQ(yaml_field(m.meta(), "status"), "3");
  EXPECT_EQ(m.metric("val_loss").size(), 1u);

  const fs::path other = folder_ / "other";
  fs::create_directories(other);
  { MlflowLog log(store, other, "stopped", Config::parse("[train]\nepochs = 1\n", "x.toml"), nullptr); }
  EXPECT_EQ(yaml_field(mlflow_run_of(other).meta(), "status"), "4") << "FAILED";
  EXPECT_EQ(mlflow_run_of(other).experiment, m.experiment) << "found by name";
}

// A store that cannot be written (a file in its place) costs the MLflow log, not the run.
TEST_F(RunTest, AnMlflowStoreThatCannotBeWrittenIsAWarningAndTheRunTrains) {
  const fs::path store = folder_ / "mlruns";
  std::ofstream(store) << "not a folder";
  std::ostringstream progress;
  RunOptions options;
  options.config_overrides = {"experiment.mlflow=" + store.string()};
  options.progress = &progress;
  RunSummary s = run_experiment(write_config("unlogged", 1), options);
  EXPECT_EQ(s.history.size(), 1u);
  EXPECT_FALSE(fs::exists(fs::path(s.run_dir) / kMlflowRunFile));
  EXPECT_NE(progress.str().find("warning: [experiment] mlflow = \"" + store.string() +
                                "\": cannot write the MLflow run log of " + s.run_dir),
            std::string::npos)
      << progress.str();
  EXPECT_NE(progress.str().find("; training goes on without the MLflow log\n"), std::string::npos) << progress.str();
}

// A cross-validation is one MLflow run with its folds and refit as child runs.
TEST_F(RunTest, FoldsAndRefitAreChildRunsOfTheCrossValidation) {
  RunOptions options;
  options.config_overrides = {"experiment.mlflow=" + (folder_ / "mlruns").string(), "train.refit=true"};
  RunSummary s = run_experiment(write_config("folded", 1, "folds = 2\n"), options);
  const MlflowRunFiles root = mlflow_run_of(s.run_dir);
  EXPECT_EQ(yaml_field(root.meta(), "status"), "3");
  EXPECT_EQ(std::get<1>(root.metric("final_val_accuracy").at(0)), s.split("val")->metrics.accuracy);
  for (const char* child : {"fold-1", "fold-2", "refit"}) {
    const MlflowRunFiles c = mlflow_run_of(fs::path(s.run_dir) / child);
    EXPECT_EQ(c.experiment, root.experiment) << child;
    EXPECT_EQ(c.tag("mlflow.parentRunId"), root.run_id) << child;
    EXPECT_EQ(c.tag("mlflow.runName"), fs::path(s.run_dir).filename().string() + "/" + child);
    EXPECT_EQ(yaml_field(c.meta(), "status"), "3") << child;
    EXPECT_EQ(c.metric("train_loss").size(), 1u) << child;
  }
}

// An augmentation appended on the command line trains and is what the saved config holds;
// `bachlab config` (new_run_config) gives that very text.
TEST_F(RunTest, AnAugmentationAddedOnTheCommandLineTrainsAndIsSaved) {
  RunOptions options;
  options.config_overrides = {"+augment={plugin = \"flip\", p = 0.5}", "augment.0.p=0.25"};
  const fs::path config = write_config("flipped", 1);
  const std::string printed = new_run_config(config, options).resolved_toml(Config::Paths::absolute);
  RunSummary s = run_experiment(config, options);
  const std::string saved = read_file(fs::path(s.run_dir) / "config.toml");
  EXPECT_EQ(saved, printed);
  Config reread = Config::parse(saved, "config.toml");
  ASSERT_EQ(reread.array("augment").size(), 1u);
  EXPECT_EQ(reread.array("augment")[0].get_string("plugin", ""), "flip");
  EXPECT_DOUBLE_EQ(reread.array("augment")[0].get_float("p", 0), 0.25);
  const auto params = s.params;
  EXPECT_NE(std::find(params.begin(), params.end(), std::make_pair(std::string("augment"), std::string("flip"))),
            params.end());
}

}  // namespace
}  // namespace bachlab::host
