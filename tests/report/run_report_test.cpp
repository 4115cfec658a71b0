// What the run folder's text files and the comparison table look like, exactly.
#include "host/report/compare.h"
#include "host/report/plots.h"
#include "host/report/run_report.h"

#include <bachlab/sdk/error.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <sstream>

namespace bachlab::host {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

RunSummary summary(const std::string& name, double test_accuracy) {
  RunSummary s;
  s.experiment = name;
  s.classes = {"A", "B"};
  s.params = {{"model", "m"}, {"lr", "0.001"}};
  s.history.resize(3);
  s.seconds = 75;
  SplitMetrics m;
  m.accuracy = 0.5;
  m.auroc_micro = 0.625;
  m.auroc_macro = kNaN;
  s.splits.push_back({"train", 10, m});
  m.accuracy = test_accuracy;
  s.splits.push_back({"test", 4, m});
  return s;
}

TEST(RunReport, ComparisonTableSaysSharedParamsOnceAndKeepsTheRowsShort) {
  std::vector<RunSummary> runs = {summary("one", 0.75), summary("second", 0.25)};
  EXPECT_EQ(format_comparison_table(runs),
            "params of every run: model=m, lr=0.001\n"
            "experiment  train acc  val acc  test acc  test AUROC micro  test AUROC macro  epochs   time\n"
            "one             0.500        -     0.750             0.625                 -       3  1m15s\n"
            "second          0.500        -     0.250             0.625                 -       3  1m15s\n");
  runs[1].params[1].second = "0.01";
  EXPECT_EQ(format_comparison_table(runs),
            "params of every run: model=m\n"
            "experiment  params    train acc  val acc  test acc  test AUROC micro  test AUROC macro  epochs   time\n"
            "one         lr=0.001      0.500        -     0.750             0.625                 -       3  1m15s\n"
            "second      lr=0.01       0.500        -     0.250             0.625                 -       3  1m15s\n");
  EXPECT_EQ(format_comparison_table({runs[0]}, true),
            "params: model=m, lr=0.001\n\n"
            "| experiment | train acc | val acc | test acc | test AUROC micro | test AUROC macro | epochs |  time |\n"
            "|:-----------|----------:|--------:|---------:|-----------------:|-----------------:|-------:|------:|\n"
            "| one        |     0.500 |       - |    0.750 |            0.625 |                - |      3 | 1m15s |\n");
  // A long list of params wraps before kTableColumns.
  RunSummary many = summary("many", 0.5);
  many.params.clear();
  for (int i = 0; i < 12; ++i) many.params.emplace_back("key" + std::to_string(i), "value" + std::to_string(i));
  const std::string text = format_comparison_table({many});
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) EXPECT_LE(line.size(), kTableColumns) << text;
  EXPECT_EQ(text.rfind("params: key0=value0, key1=value1, ", 0), 0u) << text;
  EXPECT_NE(text.find(",\n  key"), std::string::npos) << text;
}

// Two runs whose configs differ in many keys: the settings move under the results, a row
// each, so no line is hundreds of columns wide.
TEST(RunReport, CompareMovesManyDifferingSettingsToATableOfTheirOwn) {
  std::vector<ComparedRun> runs(2);
  for (size_t i = 0; i < runs.size(); ++i) {
    runs[i].folder = "runs/x/2026120" + std::to_string(i + 1);
    runs[i].summary = summary("x", 0.5);
    runs[i].summary.started = "2026-12-05 10:00:00";
    runs[i].settings = {{"same", "1"}};
    for (int k = 0; k < 12; ++k)
      runs[i].settings.emplace_back("model.setting_" + std::to_string(k), std::to_string(i * 100 + k));
  }
  runs[1].settings.emplace_back("data.root", "\"/a/long/path/to/the/photos/of/another/study/Photos\"");
  const std::string text = format_run_comparison(runs);
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) EXPECT_LE(line.size(), kTableColumns) << text;
  EXPECT_EQ(text.rfind("#   run         val acc", 0), 0u) << text;
  EXPECT_NE(text.find("\n#2  x 20261202        -     0.500"), std::string::npos) << text;
  EXPECT_NE(text.find("\nsettings that differ:\nsetting           #1  #2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\ndata.root         -   \"/a/long/path/to/the/photos/of/another/study/Photos\"\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("\nmodel.setting_11  11  111\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("same"), std::string::npos) << text;
  // Few settings stay beside the results, as columns.
  for (auto& run : runs) run.settings.resize(2);
  const std::string narrow = format_run_comparison(runs);
  EXPECT_EQ(narrow.rfind("run         model.setting_0  val acc", 0), 0u) << narrow;
}

TEST(RunReport, HistoryCsvLeavesNaNCellsEmpty) {
  EpochRecord r;
  r.epoch = 1;
  r.lr = 0.001;
  r.train = {1.5, 0.25, 0.5, 0.5};
  r.val = {kNaN, kNaN, kNaN, kNaN};
  r.seconds = 2.5;
  EXPECT_EQ(format_history_csv({r}),
            "epoch,lr,train_loss,train_accuracy,train_auroc_micro,train_auroc_macro,val_loss,val_accuracy,"
            "val_auroc_micro,val_auroc_macro,seconds\n"
            "1,0.001,1.5,0.25,0.5,0.5,,,,,2.500\n");
}

TEST(RunReport, MetricsJsonRoundTripsWithNaNAsNull) {
  RunSummary s = summary("trip", 0.75);
  s.splits[1].metrics.confusion = {{1, 1}, {0, 2}};
  s.splits[1].metrics.per_class = {{1.0, 0.5, 2.0 / 3, 2}, {2.0 / 3, 1.0, 0.8, 2}};
  s.splits[1].metrics.auroc_per_class = {0.75, kNaN};
  s.splits[0].metrics.per_class = s.splits[1].metrics.per_class;
  s.splits[0].metrics.auroc_per_class = s.splits[1].metrics.auroc_per_class;
  auto json = to_json(s);
  EXPECT_TRUE(json["splits"]["test"]["auroc_macro"].is_null());
  EXPECT_TRUE(json["splits"]["test"]["auroc_per_class"]["B"].is_null());
  RunSummary back = run_summary_from_json(json, "metrics.json");
  EXPECT_EQ(back.split("test")->metrics.confusion, s.split("test")->metrics.confusion);
  EXPECT_TRUE(std::isnan(back.split("test")->metrics.auroc_macro));
  EXPECT_EQ(back.split("test")->metrics.accuracy, 0.75);
  EXPECT_EQ(back.params, s.params);
}

TEST(RunReport, AMetricsJsonOfAnotherShapeIsRejectedWithItsName) {
  try {
    run_summary_from_json(nlohmann::json::object(), "runs/x/metrics.json");
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("runs/x/metrics.json: not a metrics.json written by bachlab run (", 0), 0u)
        << e.what();
  }
}

// A flat accuracy curve at chance stays on an axis from 0, not one down to -0.3.
TEST(RunReport, CurveAxisStopsWhereTheQuantityCannotGo) {
  const std::vector<Series> flat = {{"validation", {0.25, 0.25, 0.25}, cv::Scalar(0, 0, 0), {}}};
  CurveOptions options;
  options.chance = 0.25;
  EXPECT_LT(curve_axis(flat, options).first, 0);
  options.floor = 0, options.ceiling = 1;
  EXPECT_EQ(curve_axis(flat, options).first, 0);
  EXPECT_DOUBLE_EQ(curve_axis(flat, options).second, 0.8);
  const std::vector<Series> high = {{"training", {0.9, 0.98, 1.0}, cv::Scalar(0, 0, 0), {0.05, 0.05, 0.05}}};
  const auto [lo, hi] = curve_axis(high, options);
  EXPECT_EQ(hi, 1.0);
  EXPECT_LT(lo, 0.25);
}

TEST(RunReport, ConfusionMatrixImageHasOneCellPerPair) {
  cv::Mat image = draw_confusion_matrix({{3, 1, 0}, {0, 4, 0}, {1, 0, 2}}, {"A", "B", "C"}, "t");
  EXPECT_EQ(image.cols, 130 + 3 * 90 + 30);
  EXPECT_EQ(image.rows, 80 + 3 * 90 + 80);
  // The diagonal cell of a class predicted perfectly is the darkest shade.
  cv::Vec3b full = image.at<cv::Vec3b>(80 + 90 + 5, 130 + 90 + 5);
  EXPECT_EQ(full, cv::Vec3b(140, 60, 10));
}

// predictions.csv: one row per photo, names relative to the data root, the predicted class
// the most probable one (NaN never wins), the fold 1-based and empty outside a cross-validation.
TEST(RunReport, PredictionsCsvHasOneRowPerPhoto) {
  SplitPredictions test{"test", std::nullopt, {"/data/Photos/A/a1.tif", "/elsewhere/b,1.tif"}, {0, 1},
                        {{0.75, 0.25}, {kNaN, 0.5}}};
  SplitPredictions fold{"val", 2, {"/data/Photos/B/b2.tif"}, {1}, {{0.6, 0.4}}};
  EXPECT_EQ(format_predictions_csv({test, fold}, {"A", "B"}, "/data/Photos"),
            "file,true_class,predicted_class,A,B,split,fold\n"
            "A/a1.tif,A,A,0.750000,0.250000,test,\n"
            "\"/elsewhere/b,1.tif\",B,B,nan,0.500000,test,\n"
            "B/b2.tif,B,A,0.600000,0.400000,val,3\n");
  SplitPredictions short_rows{"test", std::nullopt, {"a.tif", "b.tif"}, {0, 1}, {{1.0, 0.0}}};
  EXPECT_THROW(format_predictions_csv({short_rows}, {"A", "B"}, ""), Error);
}

TEST(RunReport, TickLabelsNeverShowMinusZero) {
  EXPECT_EQ(tick_label(-1e-17, 0.1), "0.0");
  EXPECT_EQ(tick_label(-0.2, 0.1), "-0.2");
  EXPECT_EQ(tick_label(3, 1), "3");
}

int pixels_of(const cv::Mat& image, const cv::Vec3b& color) {
  int n = 0;
  for (int y = 0; y < image.rows; ++y)
    for (int x = 0; x < image.cols; ++x) n += image.at<cv::Vec3b>(y, x) == color;
  return n;
}

// The legend sits below the plot: the plot area is the same whatever the legend says. The
// marked epoch and the chance line are drawn in their own greys, a spread as a band.
TEST(RunReport, LearningCurveKeepsTheLegendOffTheCurvesAndMarksWhatItIsAskedTo) {
  const std::vector<double> up = {0.2, 0.5, 0.9}, down = {0.9, 0.6, 0.1};
  const cv::Scalar blue(180, 119, 31), orange(14, 127, 255);
  const cv::Mat named = draw_learning_curve("t", "y", {{"training", up, blue, {}}, {"validation", down, orange, {}}});
  const cv::Mat unnamed = draw_learning_curve("t", "y", {{"", up, blue, {}}, {"", down, orange, {}}});
  const cv::Rect plot(80, 50, 690, 340);  // left 80, top 50, right 30; below: axis band 60, one legend row 22, 8
  EXPECT_EQ(cv::norm(named(plot), unnamed(plot), cv::NORM_INF), 0.0) << "the legend reaches into the plot";
  EXPECT_GT(cv::norm(named, unnamed, cv::NORM_INF), 0.0) << "no legend drawn at all";

  // Anti-aliased text and curves hit these greys in a few pixels; the lines, in hundreds.
  EXPECT_LT(pixels_of(named, {60, 60, 60}), 20);
  EXPECT_LT(pixels_of(named, {120, 120, 120}), 20);
  CurveOptions options;
  options.chance = 0.25;
  options.marked_epoch = 2;
  options.marked_label = "epoch 2: its weights are used";
  const cv::Mat marked = draw_learning_curve("t", "y", {{"training", up, blue, {}}}, options);
  EXPECT_GT(pixels_of(marked(plot), {60, 60, 60}), 100);    // the dashed vertical at epoch 2
  EXPECT_GT(pixels_of(marked(plot), {120, 120, 120}), 200);  // the dashed chance line

  const cv::Mat band = draw_learning_curve("t", "y", {{"mean", up, blue, {0.1, 0.1, 0.1}}});
  const cv::Vec3b faded(static_cast<uint8_t>(std::lround(0.2 * 180 + 0.8 * 255)),
                        static_cast<uint8_t>(std::lround(0.2 * 119 + 0.8 * 255)),
                        static_cast<uint8_t>(std::lround(0.2 * 31 + 0.8 * 255)));
  EXPECT_GT(pixels_of(band(plot), faded), 1000) << "no +-SD band";
}

}  // namespace
}  // namespace bachlab::host
