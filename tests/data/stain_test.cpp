// Stain normalisation: Macenko against values computed by hand and with numpy on a 4x4
// image, Reinhard's statistics, two differently stained copies of one tissue brought
// together, and the blank-photo fallback.
#include "host/data/stain.h"

#include <bachlab/sdk/error.h>
#include <bachlab/sdk/random.h>

#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <cstring>

namespace bachlab::host {
namespace {

// The 4x4 test image: pixel (x, y) is haematoxylin concentration {0.3, 0.6, 0.9, 1.2}[y]
// and eosin {0.2, 0.5, 0.8, 1.1}[x] on Macenko's reference vectors H = (0.65, 0.70, 0.29)
// and E = (0.07, 0.99, 0.11) (both normalised to unit length), turned into light with
// v = round(256 exp(-(cH H + cE E)) - 1), the inverse of our OD = -ln((v + 1) / 256).
// Numbers made once with /usr/bin/python3 and numpy by the same recipe (covariance
// eigenvectors, angles, numpy.percentile with linear interpolation, least squares):
//   od = -np.log((img + 1) / 256); t = od[np.linalg.norm(od, axis=1) >= 0.15]
//   w, v = np.linalg.eigh(np.cov(t.T)); v0, v1 = v[:, 2], v[:, 1] (signs: positive sum)
//   phi = np.arctan2(t @ v1, t @ v0); directions at np.percentile(phi, 1) and (phi, 99)
//   C = np.linalg.lstsq([h e], t.T); max = np.percentile(C[k], 99)
const std::vector<std::array<uint8_t, 3>> kMixture = {
    {207, 169, 229}, {202, 125, 221}, {198, 93, 214}, {194, 69, 207}, {170, 137, 209}, {166, 101, 203},
    {163, 75, 196},  {159, 55, 190},  {139, 111, 192}, {137, 82, 186}, {134, 61, 179}, {131, 45, 174},
    {115, 90, 176},  {112, 66, 170},  {110, 49, 164},  {107, 36, 159}};

cv::Mat image_of(const std::vector<std::array<uint8_t, 3>>& pixels, int width, int height) {
  cv::Mat out(height, width, CV_8UC3);
  for (int i = 0; i < width * height; ++i) {
    const auto& p = pixels[size_t(i)];
    out.at<cv::Vec3b>(i / width, i % width) = cv::Vec3b(p[0], p[1], p[2]);
  }
  return out;
}

TEST(StainMacenko, FitMatchesHandAndNumpyValuesOnA4x4Image) {
  // By hand: the palest pixel (207, 169, 229) has OD (ln(256/208), ln(256/170), ln(256/230))
  // = (0.2076, 0.4094, 0.1071), length sqrt(0.0431 + 0.1676 + 0.0115) = 0.471 >= beta 0.15,
  // so all 16 pixels are tissue; the 1st/99th percentiles of 16 angles fall between the two
  // most extreme pixels, which is why the vectors are near, not at, H and E.
  const StainTarget t = fit_stain_target(StainMethod::macenko, {image_of(kMixture, 4, 4)});
  const std::array<double, 3> h{0.5819231849, 0.7661554181, 0.2727109866};
  const std::array<double, 3> e{0.2085628605, 0.9653759975, 0.1566866828};
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_NEAR(t.haematoxylin[k], h[k], 2e-5) << k;
    EXPECT_NEAR(t.eosin[k], e[k], 2e-5) << k;
  }
  EXPECT_NEAR(t.max_concentration[0], 1.3489833863, 1e-4);
  EXPECT_NEAR(t.max_concentration[1], 1.3505656504, 1e-4);
  EXPECT_EQ(t.method, StainMethod::macenko);
  EXPECT_EQ(t.fitted_on, "1 photo");
}

TEST(StainMacenko, NormalisingMatchesNumpyPixelForPixel) {
  // Target: the reference vectors themselves with maxima 1.2 and 0.9; numpy's result of
  // 256 exp(-[H E] C') - 1 with C' the least-squares concentrations rescaled by
  // (1.2 / 1.3490, 0.9 / 1.3506), rounded and clipped.
  StainTarget target;
  target.method = StainMethod::macenko;
  target.haematoxylin = {0.6511078258, 0.7011930431, 0.2904942607};
  target.eosin = {0.0701017213, 0.9914386298, 0.1101598478};
  target.max_concentration = {1.2, 0.9};
  const std::vector<std::array<uint8_t, 3>> expected = {
      {214, 187, 233}, {222, 154, 233}, {232, 127, 232}, {242, 105, 232}, {174, 156, 213}, {181, 128, 213},
      {189, 106, 213}, {197, 87, 212},  {141, 130, 195}, {148, 107, 195}, {154, 89, 195},  {160, 73, 194},
      {115, 109, 179}, {120, 89, 178},  {125, 74, 178},  {130, 60, 177}};
  cv::Mat out;
  ASSERT_TRUE(normalize_stain(image_of(kMixture, 4, 4), target, out));
  for (int i = 0; i < 16; ++i)
    for (int c = 0; c < 3; ++c)  // float against double and round-half-even: one level apart at most
      EXPECT_NEAR(out.at<cv::Vec3b>(i / 4, i % 4)[c], expected[size_t(i)][size_t(c)], 1) << i << " " << c;
}

TEST(StainMacenko, NormalisingToItsOwnTargetChangesNothing) {
  const cv::Mat image = image_of(kMixture, 4, 4);
  cv::Mat out;
  ASSERT_TRUE(normalize_stain(image, fit_stain_target(StainMethod::macenko, {image}), out));
  cv::Mat diff;
  cv::absdiff(image, out, diff);
  double worst = 0;
  cv::minMaxLoc(diff.reshape(1), nullptr, &worst);
  EXPECT_LE(worst, 1.0);
}

// One synthetic tissue: random nuclei (haematoxylin) on stroma (eosin) with white gaps.
struct Densities {
  cv::Mat h, e;
};

// Drawn with sdk::Rng, and one draw per statement, so that the tissue is the same on every
// standard library and compiler (distributions and argument order are theirs to choose).
Densities tissue(uint64_t seed) {
  sdk::Rng rng(seed);
  Densities d{cv::Mat::zeros(96, 128, CV_32F), cv::Mat::zeros(96, 128, CV_32F)};
  auto blob = [&rng](cv::Mat& density, int radius, int radius_range, double level, double level_range) {
    const int x = int(rng.uniform() * 128);
    const int y = int(rng.uniform() * 96);
    const int r = radius + int(rng.uniform() * radius_range);
    const double value = level + level_range * rng.uniform();
    cv::circle(density, {x, y}, r, cv::Scalar(value), cv::FILLED);
  };
  for (int i = 0; i < 30; ++i) blob(d.e, 6, 14, 0.3, 0.6);
  for (int i = 0; i < 60; ++i) blob(d.h, 2, 4, 0.6, 0.9);
  return d;
}

// Beer-Lambert with stain vectors `h`, `e` and strengths.
cv::Mat stained(const Densities& d, cv::Vec3d h, cv::Vec3d e, double hs, double es) {
  h /= cv::norm(h);
  e /= cv::norm(e);
  cv::Mat out(d.h.size(), CV_8UC3);
  for (int y = 0; y < out.rows; ++y)
    for (int x = 0; x < out.cols; ++x)
      for (int c = 0; c < 3; ++c) {
        const double od = hs * h[c] * d.h.at<float>(y, x) + es * e[c] * d.e.at<float>(y, x);
        out.at<cv::Vec3b>(y, x)[c] = cv::saturate_cast<uint8_t>(256 * std::exp(-od) - 1);
      }
  return out;
}

double mean_abs_difference(const cv::Mat& a, const cv::Mat& b) {
  cv::Mat diff;
  cv::absdiff(a, b, diff);
  const cv::Scalar m = cv::mean(diff);
  return (m[0] + m[1] + m[2]) / 3;
}

void expect_copies_brought_together(StainMethod method) {
  const Densities d = tissue(7);
  // A purple, strong staining and a pink, faint one of the very same tissue.
  const cv::Mat a = stained(d, {0.70, 0.68, 0.22}, {0.15, 0.95, 0.25}, 1.5, 1.3);
  const cv::Mat b = stained(d, {0.50, 0.78, 0.40}, {0.05, 0.90, 0.45}, 0.7, 0.6);
  // The target from a third staining of other tissue, as training photos would give it.
  const StainTarget target =
      fit_stain_target(method, {stained(tissue(8), {0.65, 0.70, 0.29}, {0.07, 0.99, 0.11}, 1.0, 1.0)});
  cv::Mat na, nb;
  ASSERT_TRUE(normalize_stain(a, target, na));
  ASSERT_TRUE(normalize_stain(b, target, nb));
  const double before = mean_abs_difference(a, b), after = mean_abs_difference(na, nb);
  EXPECT_GT(before, 15.0) << kStainMethods.name(method);  // the copies really look different
  EXPECT_LT(after, 0.35 * before) << kStainMethods.name(method) << ": " << before << " -> " << after;
}

TEST(StainNormalise, MacenkoBringsTwoStainingsOfOneTissueTogether) { expect_copies_brought_together(StainMethod::macenko); }
TEST(StainNormalise, ReinhardBringsTwoStainingsOfOneTissueTogether) { expect_copies_brought_together(StainMethod::reinhard); }

TEST(StainReinhard, ResultHasTheTargetsLabStatistics) {
  const Densities d = tissue(3);
  const cv::Mat source = stained(d, {0.50, 0.78, 0.40}, {0.05, 0.90, 0.45}, 0.7, 0.6);
  const StainTarget target =
      fit_stain_target(StainMethod::reinhard, {stained(tissue(4), {0.65, 0.70, 0.29}, {0.07, 0.99, 0.11}, 1.2, 1.0)});
  cv::Mat out;
  ASSERT_TRUE(normalize_stain(source, target, out));
  const StainTarget achieved = fit_stain_target(StainMethod::reinhard, {out});
  const StainTarget before = fit_stain_target(StainMethod::reinhard, {source});
  for (size_t k = 0; k < 3; ++k) {
    // Rounding to 8 bits and clipping at white cost a little (L is 0..100, a and b about
    // -100..100), so near the target and much nearer than the source was.
    EXPECT_NEAR(achieved.lab_mean[k], target.lab_mean[k], 1.5) << k;
    EXPECT_NEAR(achieved.lab_std[k], target.lab_std[k], 0.15 * target.lab_std[k]) << k;
    EXPECT_LT(std::abs(achieved.lab_mean[k] - target.lab_mean[k]) + std::abs(achieved.lab_std[k] - target.lab_std[k]),
              0.5 * (std::abs(before.lab_mean[k] - target.lab_mean[k]) + std::abs(before.lab_std[k] - target.lab_std[k])))
        << k;
  }
}

TEST(StainFallback, BlankAndTissueFreePhotosAreLeftExactlyAsTheyWere) {
  const StainTarget macenko = fit_stain_target(StainMethod::macenko, {image_of(kMixture, 4, 4)});
  const StainTarget reinhard = fit_stain_target(StainMethod::reinhard, {image_of(kMixture, 4, 4)});
  cv::Mat white(32, 32, CV_8UC3, cv::Scalar(255, 255, 255));
  cv::Mat glass(32, 32, CV_8UC3);
  cv::randu(glass, 246, 256);  // bright glass with noise: OD vector at most 0.07 long
  // One stain only (eosin): every OD on a line, so two stains cannot be separated.
  const cv::Mat eosin_only = stained({cv::Mat::zeros(32, 32, CV_32F), cv::Mat(32, 32, CV_32F, cv::Scalar(1.0))},
                                     {0.65, 0.70, 0.29}, {0.07, 0.99, 0.11}, 1, 1);
  for (const cv::Mat& photo : {white, glass}) {
    for (const StainTarget* target : {&macenko, &reinhard}) {
      cv::Mat out;
      EXPECT_FALSE(normalize_stain(photo, *target, out)) << kStainMethods.name(target->method);
      EXPECT_EQ(cv::norm(photo, out, cv::NORM_INF), 0.0) << kStainMethods.name(target->method);
    }
  }
  cv::Mat out;
  EXPECT_FALSE(normalize_stain(eosin_only, macenko, out));
  EXPECT_EQ(cv::norm(eosin_only, out, cv::NORM_INF), 0.0);
  // In place on a prepared (3,H,W) image too.
  torch::Tensor chw = torch::full({3, 8, 8}, 255, torch::kUInt8);
  EXPECT_FALSE(normalize_stain_chw(chw, macenko));
  EXPECT_TRUE(chw.eq(255).all().item<bool>());
}

TEST(StainFallback, FittingOnPhotosWithoutTissueSaysSo) {
  cv::Mat white(16, 16, CV_8UC3, cv::Scalar(255, 255, 255));
  try {
    fit_stain_target(StainMethod::macenko, {white, white});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "stain normalisation: cannot fit a macenko target on 2 photos: only 0 of 512 pixels looked at are tissue "
              "(OD vector length >= 0.15; at least 8 pixels and 1% needed); use photos with tissue or set [data] "
              "stain_reference to a photo that shows tissue");
  }
  EXPECT_THROW(fit_stain_target(StainMethod::none, {image_of(kMixture, 4, 4)}), Error);
}

TEST(StainTarget, FittedOnTheGivenRowsOnlyAndKeyedByValue) {
  const Densities d = tissue(11);
  const cv::Mat purple = stained(d, {0.70, 0.68, 0.22}, {0.15, 0.95, 0.25}, 1.5, 1.3);
  const cv::Mat pink = stained(d, {0.50, 0.78, 0.40}, {0.05, 0.90, 0.45}, 0.7, 0.6);
  torch::Tensor images = torch::empty({2, 3, purple.rows, purple.cols}, torch::kUInt8);
  for (int i = 0; i < 2; ++i) {
    std::vector<cv::Mat> planes;
    cv::split(i == 0 ? purple : pink, planes);
    for (int c = 0; c < 3; ++c)
      std::memcpy(images[i][c].data_ptr<uint8_t>(), planes[size_t(c)].data, planes[size_t(c)].total());
  }
  const StainTarget row0 = fit_stain_target(StainMethod::macenko, images, {0});
  EXPECT_EQ(row0.key(), fit_stain_target(StainMethod::macenko, {purple}).key());
  EXPECT_NE(row0.key(), fit_stain_target(StainMethod::macenko, images, {1}).key());
  EXPECT_EQ(row0.fitted_on, "1 training photo");
  EXPECT_EQ(stain_target_from_json(stain_target_to_json(row0)).key(), row0.key());
  EXPECT_THROW(fit_stain_target(StainMethod::macenko, images, {2}), Error);
}

}  // namespace
}  // namespace bachlab::host
