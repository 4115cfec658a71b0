#pragma once
// Stain normalisation of H&E photos: Macenko et al. (2009) and Reinhard et al. (2001),
// implemented here from the papers. A target (what every photo is mapped to) is fitted
// once - on a named reference photo or on the training photos only, never on validation or
// test photos - and then applied to each photo before the prepared images are cached.
//
// Optical density (OD) per channel of an 8-bit pixel v is -ln((v + 1) / 256): white 255 is
// OD 0 and black 0 is ln 256. A pixel is tissue when the length of its OD vector is at
// least kStainBeta; glass, lumens and fat are not, and are left out of every fit.
//
// A photo with too little tissue to fit (fewer than kMinTissuePixels tissue pixels or less
// than kMinTissueFraction of its pixels, a single stain, a degenerate fit) is left exactly
// as it is - a blank photo stays blank, never NaN - and the caller is told.

#include "host/data/stain_method.h"

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace bachlab::host {

/// OD below which a channel counts as transparent (Macenko's beta).
inline constexpr double kStainBeta = 0.15;
/// Percentile (and 100 minus it) of the projected angles taken as the stain directions
/// (Macenko's alpha, in percent).
inline constexpr double kStainAlpha = 1.0;
/// Percentile of each stain's concentration taken as its maximum.
inline constexpr double kStainMaxPercentile = 99.0;
inline constexpr size_t kMinTissuePixels = 8;
inline constexpr double kMinTissueFraction = 0.01;

/// What photos are normalised to.
struct StainTarget {
  /// macenko or reinhard.
  StainMethod method = StainMethod::macenko;
  /// Macenko: unit OD vectors (R, G, B) of haematoxylin and eosin.
  std::array<double, 3> haematoxylin{0, 0, 0};
  std::array<double, 3> eosin{0, 0, 0};
  /// Macenko: the 99th percentile of the haematoxylin and eosin concentrations.
  std::array<double, 2> max_concentration{0, 0};
  /// Reinhard: per-channel mean and standard deviation in CIE L*a*b* (L 0..100).
  std::array<double, 3> lab_mean{0, 0, 0};
  std::array<double, 3> lab_std{0, 0, 0};
  /// Where it was fitted, for logs: "reference photo <path>" or "<n> training photos".
  std::string fitted_on;

  /// The method and every value (9 significant digits), for cache keys: equal keys mean the
  /// same normalisation.
  std::string key() const;
};

/// The target as JSON (run.json keeps it so that predict normalises as training did), and
/// back; from_json throws Error for a malformed object.
nlohmann::json stain_target_to_json(const StainTarget& target);
StainTarget stain_target_from_json(const nlohmann::json& json);

/// Fits a target of `method` (macenko or reinhard) on RGB CV_8UC3 photos, pooling their
/// pixels (every photo contributes alike; at most about 4 million pixels are used, evenly
/// strided). Throws Error if the photos hold too little tissue to fit, or for another method.
StainTarget fit_stain_target(StainMethod method, const std::vector<cv::Mat>& rgb_photos);

/// The same on rows `indices` of uint8 (N,3,H,W) prepared images: the training photos.
StainTarget fit_stain_target(StainMethod method, const torch::Tensor& uint8_images,
                             const std::vector<int64_t>& indices);

/// Normalises one RGB CV_8UC3 photo to `target` into `out` (which may be `rgb`). Returns
/// false, with `out` an exact copy, when the photo has too little tissue to normalise.
bool normalize_stain(const cv::Mat& rgb, const StainTarget& target, cv::Mat& out);

/// The same in place on a contiguous uint8 (3,H,W) tensor (one prepared image).
bool normalize_stain_chw(torch::Tensor chw, const StainTarget& target);

}  // namespace bachlab::host
