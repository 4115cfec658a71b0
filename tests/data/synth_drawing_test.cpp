// The drawing of the synthetic tissue: deterministic, tissue at every size, the classes
// told apart by structure and not by colour, and pinned to the pixels it always drew.
#include "host/data/option_error.h"
#include "host/data/synth.h"
#include "host/data/synth_drawing.h"
#include "tests/data/synth_checks.h"

#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

#include <array>
#include <cmath>
#include <vector>

using bachlab::test::error_of;
using bachlab::test::same_pixels;
using namespace bachlab::host;

TEST(SynthDraw, SameSeedSamePixelsOtherSeedOtherPixels) {
  const cv::Mat a = draw_synthetic_image(2, 64, 48, 11);
  ASSERT_EQ(a.type(), CV_8UC3);
  ASSERT_EQ(a.cols, 64);
  ASSERT_EQ(a.rows, 48);
  EXPECT_TRUE(same_pixels(a, draw_synthetic_image(2, 64, 48, 11)));
  EXPECT_FALSE(same_pixels(a, draw_synthetic_image(2, 64, 48, 12)));
  // One seed must not draw every class on the same stroma.
  EXPECT_FALSE(same_pixels(a, draw_synthetic_image(3, 64, 48, 11)));
  EXPECT_TRUE(same_pixels(draw_synthetic_tissue(2, 64, 48, 11).image, a));
}

TEST(SynthDraw, EverySizeShowsTissue) {
  for (const cv::Size size : {cv::Size(32, 32), cv::Size(224, 224), cv::Size(2048, 1536)}) {
    const SynthTissue tissue = draw_synthetic_tissue(3, size.width, size.height, 4);
    ASSERT_EQ(tissue.image.size(), size);
    ASSERT_EQ(tissue.nuclei.size(), size);
    cv::Scalar mean, sd;
    cv::meanStdDev(tissue.image, mean, sd);
    // Stained tissue: neither blank glass nor black, and with structure in it.
    for (int c = 0; c < 3; ++c) {
      EXPECT_GT(mean[c], 60) << size;
      EXPECT_LT(mean[c], 245) << size;
      EXPECT_GT(sd[c], 5) << size;
    }
    if (size.width >= 224) EXPECT_GT(cv::countNonZero(tissue.nuclei), 0) << size;
  }
}

TEST(SynthDraw, BadArgumentsAreNamed) {
  EXPECT_EQ(error_of([] { draw_synthetic_image(4, 32, 32, 0); }),
            "synth: class index must be 0..3 (Normal, Benign, InSitu, Invasive) (was 4)");
  EXPECT_EQ(error_of([] { draw_synthetic_image(0, 4, 32, 0); }),
            "synth: the image size must be between 8x8 and 16384x16384 (was 4x32); give WIDTHxHEIGHT such as "
            "2048x1536");
}

// Colour must not give the class away: per-image mean RGB, 40 images a class.
TEST(SynthClasses, MeanColourDoesNotSeparateClasses) {
  constexpr int kImages = 40;
  std::array<std::array<double, 3>, 4> mean{}, sd{};
  for (int k = 0; k < 4; ++k) {
    std::array<std::vector<double>, 3> values;
    for (int i = 1; i <= kImages; ++i) {
      const cv::Scalar m = cv::mean(draw_synthetic_image(k, 32, 24, synthetic_image_seed(77, k, i)));
      for (int c = 0; c < 3; ++c) values[c].push_back(m[c]);
    }
    for (int c = 0; c < 3; ++c) {
      cv::Scalar mu, sigma;
      cv::meanStdDev(values[c], mu, sigma);
      mean[k][c] = mu[0];
      sd[k][c] = sigma[0];
      // Stain and exposure really vary from image to image.
      EXPECT_GT(sd[k][c], 8) << bach_classes()[k] << " channel " << c;
    }
  }
  for (int a = 0; a < 4; ++a)
    for (int b = a + 1; b < 4; ++b)
      for (int c = 0; c < 3; ++c)
        EXPECT_LT(std::abs(mean[a][c] - mean[b][c]), 0.75 * std::min(sd[a][c], sd[b][c]))
            << bach_classes()[a] << " vs " << bach_classes()[b] << " channel " << c << ": " << mean[a][c] << " vs "
            << mean[b][c];
}

// Structure must: carcinoma is crowded with larger nuclei (thicker blobs of haematoxylin,
// measured by the distance transform so that touching rings of small nuclei stay thin),
// benign glands have the most lumen, invasive none at all; and the masks match the pixels.
TEST(SynthClasses, EachClassIsDrawnWithItsOwnStructure) {
  constexpr int kImages = 16;
  struct Stats {
    double nucleus_fraction = 0, lumen_fraction = 0, thickness = 0;
    int images_with_lumen = 0;
  };
  std::array<Stats, 4> stats;
  for (int k = 0; k < 4; ++k) {
    for (int i = 1; i <= kImages; ++i) {
      const SynthTissue t = draw_synthetic_tissue(k, 512, 384, synthetic_image_seed(31, k, i));
      const double pixels = static_cast<double>(t.nuclei.total());
      const int nucleus_pixels = cv::countNonZero(t.nuclei), lumen = cv::countNonZero(t.lumen);
      ASSERT_GT(nucleus_pixels, 100) << bach_classes()[k] << " #" << i;
      stats[k].nucleus_fraction += nucleus_pixels / pixels / kImages;
      stats[k].lumen_fraction += lumen / pixels / kImages;
      stats[k].images_with_lumen += lumen > 0;
      cv::Mat distance;
      cv::distanceTransform(t.nuclei, distance, cv::DIST_L2, 3);
      stats[k].thickness += cv::mean(distance, t.nuclei)[0] / kImages;

      // Nuclei are where the haematoxylin is: darker and bluer than the rest; lumens are
      // the brightest.
      cv::Mat gray;
      cv::cvtColor(t.image, gray, cv::COLOR_RGB2GRAY);
      const cv::Mat rest = (t.nuclei == 0) & (t.lumen == 0);
      EXPECT_LT(cv::mean(gray, t.nuclei)[0] + 20, cv::mean(gray, rest)[0]) << bach_classes()[k] << " #" << i;
      const cv::Scalar in = cv::mean(t.image, t.nuclei), out = cv::mean(t.image, rest);
      EXPECT_GT(in[2] / in[0], out[2] / out[0]) << bach_classes()[k] << " #" << i;
      if (lumen > 20) EXPECT_GT(cv::mean(gray, t.lumen)[0], cv::mean(gray, rest)[0]) << bach_classes()[k] << " #" << i;
    }
  }
  const auto& [normal, benign, in_situ, invasive] = stats;
  for (const Stats* carcinoma : {&in_situ, &invasive}) {
    for (const Stats* benign_like : {&normal, &benign}) {
      EXPECT_GT(carcinoma->nucleus_fraction, 1.3 * benign_like->nucleus_fraction);
      EXPECT_GT(carcinoma->thickness, 1.2 * benign_like->thickness);
    }
  }
  EXPECT_GT(benign.nucleus_fraction, normal.nucleus_fraction);
  EXPECT_GT(benign.lumen_fraction, 3 * normal.lumen_fraction);
  EXPECT_GT(benign.lumen_fraction, 3 * in_situ.lumen_fraction);
  EXPECT_EQ(normal.images_with_lumen, kImages);
  EXPECT_EQ(benign.images_with_lumen, kImages);
  EXPECT_EQ(invasive.images_with_lumen, 0);
}

// The default variant is pinned to the pixels it had before variants existed: FNV-1a of
// the RGB bytes of image 1 of each class, seed 9, written by the build before the change
// (`bachlab synth --per-class 1 --seed 9 --size 64x48` and `--size 512x384`, read back with PIL).
TEST(SynthVariant, DefaultVariantDrawsTheSamePixelsAsBefore) {
  auto fnv = [](const cv::Mat& m) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < m.total() * m.elemSize(); ++i) h = (h ^ m.data[i]) * 0x100000001b3ULL;
    return h;
  };
  const uint64_t small[4] = {0x53be80ba65b2c03fULL, 0xd332484f343ad664ULL, 0x401518c2f0aad709ULL, 0x6220cd4b7e28d338ULL};
  const uint64_t large[4] = {0xaed1e2b9f5f6cacdULL, 0x4954acee2ee2f45eULL, 0x7f28c1e5666c8a32ULL, 0x7f3d2ed58c5d93a9ULL};
  for (int k = 0; k < 4; ++k) {
    EXPECT_EQ(fnv(draw_synthetic_image(k, 64, 48, synthetic_image_seed(9, k, 1))), small[k]) << k;
    EXPECT_EQ(fnv(draw_synthetic_image(k, 512, 384, synthetic_image_seed(9, k, 1), "default")), large[k]) << k;
  }
}

TEST(SynthVariant, NuclearIsDeterministicAndItsOwnDrawing) {
  const cv::Mat a = draw_synthetic_image(2, 256, 192, 11, "nuclear");
  EXPECT_TRUE(same_pixels(a, draw_synthetic_image(2, 256, 192, 11, "nuclear")));
  EXPECT_FALSE(same_pixels(a, draw_synthetic_image(2, 256, 192, 12, "nuclear")));
  EXPECT_FALSE(same_pixels(a, draw_synthetic_image(2, 256, 192, 11)));
  EXPECT_EQ(error_of([] { draw_synthetic_image(1, 32, 32, 0, "nuclei"); }),
            "synth: the variant must be \"default\" or \"nuclear\" (was \"nuclei\")");
}

// The TIFFs record this as their resolution: BACH's 0.42 um at 2048x1536, coarser for
// smaller images, but never coarser than BACH at scale 0.5 in the nuclear variant.
TEST(SynthDraw, PixelSizeFollowsTheSampling) {
  EXPECT_DOUBLE_EQ(synthetic_pixel_microns(2048, 1536, "default"), 0.42);
  EXPECT_DOUBLE_EQ(synthetic_pixel_microns(1024, 768, "default"), 0.84);
  EXPECT_DOUBLE_EQ(synthetic_pixel_microns(256, 192, "default"), 3.36);
  EXPECT_DOUBLE_EQ(synthetic_pixel_microns(256, 192, "nuclear"), 0.84);
  EXPECT_DOUBLE_EQ(synthetic_pixel_microns(4096, 3072, "nuclear"), 0.21);
}

// A caller checking its options first gets the same errors as the drawing, and they name
// the option, so the command line can name its flag instead.
TEST(SynthDraw, OptionsCheckedBeforeDrawingNameTheOption) {
  EXPECT_EQ(error_of([] { check_synthetic_drawing(32, 24, "default"); }), "(no error)");
  try {
    check_synthetic_drawing(32, 16385, "default");
    FAIL() << "expected an error";
  } catch (const OptionError& e) {
    EXPECT_EQ(e.option(), "size");
    EXPECT_EQ(e.naming("--size"),
              "synth: --size must be between 8x8 and 16384x16384 (was 32x16385); give WIDTHxHEIGHT such as 2048x1536");
  }
  try {
    check_synthetic_drawing(32, 24, "nuclei");
    FAIL() << "expected an error";
  } catch (const OptionError& e) {
    EXPECT_EQ(e.option(), "variant");
    EXPECT_EQ(std::string(e.what()), "synth: the variant must be \"default\" or \"nuclear\" (was \"nuclei\")");
  }
  EXPECT_EQ(error_of([] { check_bach_class_index(-1); }),
            "synth: class index must be 0..3 (Normal, Benign, InSitu, Invasive) (was -1)");
}
