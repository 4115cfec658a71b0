// Exploration writes every picture and both reports, with the tables the study made.
#include "host/data/explore.h"
#include "tests/data/fixtures.h"

#include <bachlab/sdk/error.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

namespace bachlab::host {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

TEST(ExploreTest, WritesPicturesAndBothReports) {
  TempDir dir;
  test::make_bach_dataset(dir.path(), 3, 64, 48);
  DataConfig config;
  config.root = dir.path();
  config.on_bad_image = BadImages::skip;
  // One photo that cannot be decoded: exploring lists it rather than stopping.
  const fs::path bad = dir / "Photos" / "Benign" / "b003.tif";
  const std::string bytes = test::read_bytes(bad);
  test::write_bytes(bad, bytes.substr(0, bytes.size() / 2));
  Dataset dataset = discover_dataset(config);

  ExploreOptions options;
  options.out = dir / "report";
  options.samples_per_class = 2;
  options.mean_width = 32;
  options.workers = 2;
  ExploreSummary summary = explore_dataset(dataset, options);

  EXPECT_EQ(summary.class_counts, (std::vector<int64_t>{3, 2, 3, 3}));
  EXPECT_TRUE(summary.one_size);
  EXPECT_EQ(summary.sizes, (std::vector<std::pair<std::string, int64_t>>{{"64x48", 11}}));
  ASSERT_EQ(summary.problems.size(), 1u);
  EXPECT_THAT(summary.problems[0], ::testing::StartsWith(bad.string() + ": corrupt or truncated TIFF: "));

  for (const char* name : {"class_balance.png", "samples_Normal.png", "samples_Benign.png", "samples_InSitu.png",
                           "samples_Invasive.png", "mean_images.png", "mean_difference.png", "histograms.png",
                           "report.md", "report.html"}) {
    EXPECT_TRUE(fs::exists(options.out / name)) << name;
    EXPECT_GT(fs::file_size(options.out / name), 0u) << name;
  }
  EXPECT_EQ(summary.files.back(), options.out / "report.html");
  cv::Mat grid = cv::imread((options.out / "samples_Normal.png").string());
  EXPECT_EQ(grid.cols, 4 + 2 * (192 + 4));  // two samples side by side

  const std::string md = test::read_bytes(options.out / "report.md");
  EXPECT_THAT(md, ::testing::HasSubstr("| Class | Photos | Share |\n| --- | ---: | ---: |\n| Normal | 3 | 27.3% |\n"
                                       "| Benign | 2 | 18.2% |\n"));
  EXPECT_THAT(md, ::testing::HasSubstr("The classes are not balanced: from 2 to 3 photos (ratio 1.50)."));
  EXPECT_THAT(md, ::testing::HasSubstr("| 64x48 | RGB 8-bit | TIFF (none) | 11 |"));
  EXPECT_THAT(md, ::testing::HasSubstr("All 11 photos share one size: 64x48 (aspect 4:3)"));
  EXPECT_THAT(md, ::testing::HasSubstr("![Normal mean against the rest](mean_difference.png)"));
  EXPECT_THAT(md, ::testing::HasSubstr("## Problems\n\n- " + bad.string()));

  const std::string html = test::read_bytes(options.out / "report.html");
  EXPECT_THAT(html, ::testing::HasSubstr("<img alt=\"Photos per class\" src=\"data:image/png;base64,iVBORw0KGgo"));
  EXPECT_EQ(html.find("src=\"class_balance.png\""), std::string::npos) << "pictures must be inline";
  EXPECT_THAT(html, ::testing::HasSubstr("<td>Benign</td><td>2</td><td>18.2%</td>"));
}

TEST(ExploreTest, MeanImagesReflectTheClassColours) {
  TempDir dir;
  test::make_bach_dataset(dir.path(), 2, 32, 24);
  DataConfig config;
  config.root = dir.path();
  ExploreOptions options;
  options.out = dir / "out";
  options.mean_width = 16;
  explore_dataset(discover_dataset(config), options);
  cv::Mat means = cv::imread((options.out / "mean_images.png").string());  // BGR
  // The Normal panel starts at x = 8, y = 24 (after the caption); class_image() gives
  // Normal the RGB mean (230, 180, 200) plus zero-mean noise.
  cv::Vec3b normal = means.at<cv::Vec3b>(24 + 6, 8 + 8);
  EXPECT_NEAR(normal[2], 230, 8);
  EXPECT_NEAR(normal[1], 180, 8);
  EXPECT_NEAR(normal[0], 200, 8);
}

// The histograms are scaled to the values below 255, so a white background's spike at 255
// does not flatten the rest.
TEST(ExploreTest, HistogramScaleIgnoresTheSpikeAt255) {
  std::array<std::array<double, 256>, 3> shares{};
  shares[0][100] = 2.0;
  shares[2][30] = 4.0;
  shares[1][255] = 60.0;
  EXPECT_DOUBLE_EQ(histogram_scale(shares), 4.4);
}

// Each channel's curve is drawn in its own colour: with only red pixels counted, every
// coloured pixel above the baseline belongs to the red curve, so it must be red in the
// (RGB) figure - a BGR colour would draw it blue.
TEST(ExploreTest, TheRedChannelsCurveIsRed) {
  std::array<std::array<uint64_t, 256>, 3> counts{};
  for (int v = 0; v < 256; ++v) counts[0][size_t(v)] = uint64_t(1000 + 10 * std::abs(v - 128));
  // Green and blue count nothing: their curves lie on the baseline, below the region looked at.
  const cv::Mat panel = histogram_panel("Normal", counts);
  int red = 0, blue = 0;
  // The plot's inside, above the baseline and left of the legend.
  for (int y = 50; y < 200; ++y)
    for (int x = 70; x < 370; ++x) {
      const cv::Vec3b p = panel.at<cv::Vec3b>(y, x);  // R, G, B
      if (p[0] > 150 && p[1] < 110 && p[2] < 110) ++red;
      if (p[2] > 150 && p[0] < 110 && p[1] < 150) ++blue;
    }
  EXPECT_GT(red, 100);
  EXPECT_EQ(blue, 0);
}

TEST(ExploreTest, Base64MatchesRfc4648Vectors) {
  auto encode = [](const std::string& text) { return base64_encode(std::vector<uint8_t>(text.begin(), text.end())); };
  EXPECT_EQ(encode(""), "");
  EXPECT_EQ(encode("f"), "Zg==");
  EXPECT_EQ(encode("fo"), "Zm8=");
  EXPECT_EQ(encode("foo"), "Zm9v");
  EXPECT_EQ(encode("foob"), "Zm9vYg==");
  EXPECT_EQ(encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(encode("foobar"), "Zm9vYmFy");
}

TEST(ExploreTest, UnwritableOutputNamesTheFolder) {
  TempDir dir;
  test::make_bach_dataset(dir.path(), 1, 16, 12);
  test::write_bytes(dir / "taken", "a file");
  DataConfig config;
  config.root = dir.path();
  ExploreOptions options;
  options.out = dir / "taken";
  try {
    explore_dataset(discover_dataset(config), options);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), (dir / "taken").string() +
                                         ": cannot create the output folder (Not a directory); choose another output folder");
  }
}

}  // namespace
}  // namespace bachlab::host
