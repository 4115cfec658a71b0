// Macenko and Reinhard stain normalisation; see stain.h for the conventions.
//
// Everything works on three planes of 8-bit samples (a prepared image is planar already;
// an interleaved cv::Mat is split first), so the hot loops are plain arrays: OD comes from a
// 256-entry table, Macenko's whole per-pixel mapping is one 3x3 matrix on OD followed by
// cv::exp on blocks of pixels (vectorised), and Reinhard is OpenCV's Lab conversion.
#include "host/data/stain.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace bachlab::host {

namespace {

// Pixels a pooled fit looks at, at most: enough for stable percentiles, bounded time.
constexpr size_t kMaxFitPixels = size_t(4) << 20;
constexpr size_t kBlock = 4096;

struct Planes {
  uint8_t* c[3];
  int rows = 0, cols = 0;
  size_t size() const { return size_t(rows) * size_t(cols); }
};

const std::array<float, 256>& od_table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int v = 0; v < 256; ++v) t[size_t(v)] = float(-std::log((v + 1) / 256.0));
    return t;
  }();
  return table;
}

// Transparent when the OD vector is shorter than beta. (Requiring beta in every channel, as
// some code does, drops pure eosin, whose red OD is small, and bends the eosin vector
// towards haematoxylin.)
bool is_tissue(float r, float g, float b) { return r * r + g * g + b * b >= float(kStainBeta * kStainBeta); }

bool enough_tissue(size_t tissue, size_t looked) {
  return tissue >= kMinTissuePixels && double(tissue) >= kMinTissueFraction * double(looked);
}

// Appends the OD triples of the tissue pixels among every `stride`-th pixel; returns how
// many pixels were looked at.
size_t collect_tissue_od(const Planes& p, size_t stride, std::vector<float>& od) {
  const auto& table = od_table();
  const size_t n = p.size();
  size_t looked = 0;
  for (size_t i = 0; i < n; i += stride, ++looked) {
    const float r = table[p.c[0][i]], g = table[p.c[1][i]], b = table[p.c[2][i]];
    if (is_tissue(r, g, b)) od.insert(od.end(), {r, g, b});
  }
  return looked;
}

// numpy.percentile's default (linear interpolation between the two nearest ranks).
// Reorders `values`.
double percentile(std::vector<float>& values, double percent) {
  const double position = percent / 100.0 * double(values.size() - 1);
  const size_t below = size_t(std::floor(position));
  std::nth_element(values.begin(), values.begin() + long(below), values.end());
  const double low = values[below];
  if (below + 1 >= values.size()) return low;
  const double high = *std::min_element(values.begin() + long(below) + 1, values.end());
  return low + (position - double(below)) * (high - low);
}

cv::Vec3d positive_unit(cv::Vec3d v) {
  if (v[0] + v[1] + v[2] < 0) v = -v;
  return v / cv::norm(v);
}

struct MacenkoStains {
  cv::Vec3d h, e;
  double max_h = 0, max_e = 0;
};

// Macenko's fit on tissue OD triples. Returns "" on success, else why it cannot fit.
std::string fit_macenko(const std::vector<float>& od, MacenkoStains& out) {
  const size_t n = od.size() / 3;
  if (n < kMinTissuePixels) return fmt::format("{} tissue pixels, at least {} needed", n, kMinTissuePixels);
  cv::Vec3d mean(0, 0, 0);
  for (size_t i = 0; i < n; ++i)
    for (int k = 0; k < 3; ++k) mean[k] += od[3 * i + size_t(k)];
  mean /= double(n);
  cv::Matx33d cov = cv::Matx33d::zeros();
  for (size_t i = 0; i < n; ++i) {
    const cv::Vec3d d(od[3 * i] - mean[0], od[3 * i + 1] - mean[1], od[3 * i + 2] - mean[2]);
    for (int a = 0; a < 3; ++a)
      for (int b = 0; b < 3; ++b) cov(a, b) += d[a] * d[b];
  }
  cov *= 1.0 / double(n - 1);
  cv::Matx31d values;
  cv::Matx33d vectors;  // rows, largest eigenvalue first
  cv::eigen(cov, values, vectors);
  if (!std::isfinite(values(0)) || !std::isfinite(values(1)) || values(1) <= 1e-12 * std::max(values(0), 1e-300))
    return "the tissue shows a single colour direction, so two stains cannot be told apart";
  // Signs so that tissue (all OD positive) projects onto +v0.
  const cv::Vec3d v0 = positive_unit({vectors(0, 0), vectors(0, 1), vectors(0, 2)});
  const cv::Vec3d v1 = positive_unit({vectors(1, 0), vectors(1, 1), vectors(1, 2)});
  std::vector<float> angle(n);
  for (size_t i = 0; i < n; ++i) {
    const cv::Vec3d x(od[3 * i], od[3 * i + 1], od[3 * i + 2]);
    angle[i] = float(std::atan2(x.dot(v1), x.dot(v0)));
  }
  const double low = percentile(angle, kStainAlpha), high = percentile(angle, 100 - kStainAlpha);
  const cv::Vec3d a = positive_unit(v0 * std::cos(low) + v1 * std::sin(low));
  const cv::Vec3d b = positive_unit(v0 * std::cos(high) + v1 * std::sin(high));
  // Haematoxylin absorbs more red than eosin does.
  out.h = a[0] > b[0] ? a : b;
  out.e = a[0] > b[0] ? b : a;
  const double hh = out.h.dot(out.h), he = out.h.dot(out.e), ee = out.e.dot(out.e);
  const double det = hh * ee - he * he;
  if (!(det > 1e-8)) return "the two stain directions coincide";
  // Least squares: concentrations = (M^T M)^-1 M^T od with M = [h e].
  const cv::Vec3d ph = (ee * out.h - he * out.e) / det, pe = (hh * out.e - he * out.h) / det;
  std::vector<float> ch(n), ce(n);
  for (size_t i = 0; i < n; ++i) {
    const cv::Vec3d x(od[3 * i], od[3 * i + 1], od[3 * i + 2]);
    ch[i] = float(ph.dot(x));
    ce[i] = float(pe.dot(x));
  }
  out.max_h = percentile(ch, kStainMaxPercentile);
  out.max_e = percentile(ce, kStainMaxPercentile);
  if (!(out.max_h > 1e-6 && out.max_e > 1e-6) || !std::isfinite(out.max_h) || !std::isfinite(out.max_e))
    return "a stain's concentration is never positive";
  return "";
}

// Lab (float, L 0..100) of planar 8-bit RGB, interleaved.
cv::Mat to_lab(const Planes& p) {
  std::vector<cv::Mat> planes;
  for (int k = 0; k < 3; ++k) planes.emplace_back(p.rows, p.cols, CV_8UC1, p.c[k]);
  cv::Mat rgb, lab;
  cv::merge(planes, rgb);
  rgb.convertTo(rgb, CV_32FC3, 1.0 / 255.0);
  cv::cvtColor(rgb, lab, cv::COLOR_RGB2Lab);
  return lab;
}

struct LabSums {
  std::array<double, 3> sum{0, 0, 0}, squares{0, 0, 0};
  size_t count = 0;
  void add(const cv::Mat& lab, size_t stride) {
    const auto* px = lab.ptr<cv::Vec3f>();
    const size_t n = lab.total();
    for (size_t i = 0; i < n; i += stride, ++count)
      for (int k = 0; k < 3; ++k) {
        sum[size_t(k)] += px[i][k];
        squares[size_t(k)] += double(px[i][k]) * px[i][k];
      }
  }
  void result(std::array<double, 3>& mean, std::array<double, 3>& std) const {
    for (size_t k = 0; k < 3; ++k) {
      mean[k] = sum[k] / double(count);
      std[k] = std::sqrt(std::max(0.0, squares[k] / double(count) - mean[k] * mean[k]));
    }
  }
};

void check_method(StainMethod method) {
  if (method != StainMethod::macenko && method != StainMethod::reinhard)
    throw Error(fmt::format("stain normalisation: method must be \"macenko\" or \"reinhard\" (was \"{}\")",
                            kStainMethods.name(method)));
}

// Fits on photos given as planes; `what` names them in errors.
StainTarget fit_planes(StainMethod method, const std::vector<Planes>& photos, const std::string& what) {
  check_method(method);
  if (photos.empty()) throw Error("stain normalisation: no photos to fit the target on");
  size_t total = 0;
  for (const auto& p : photos) total += p.size();
  const size_t stride = std::max<size_t>(1, total / kMaxFitPixels);
  StainTarget target;
  target.method = method;
  target.fitted_on = what;
  std::vector<float> od;
  size_t looked = 0;
  for (const auto& p : photos) looked += collect_tissue_od(p, stride, od);
  const size_t tissue = od.size() / 3;
  if (!enough_tissue(tissue, looked))
    throw Error(fmt::format("stain normalisation: cannot fit a {} target on {}: only {} of {} pixels looked at are "
                            "tissue (OD vector length >= {}; at least {} pixels and {}% needed); use photos with "
                            "tissue or set [data] stain_reference to a photo that shows tissue",
                            kStainMethods.name(method), what, tissue, looked, kStainBeta, kMinTissuePixels, kMinTissueFraction * 100));
  if (method == StainMethod::macenko) {
    MacenkoStains stains;
    if (std::string why = fit_macenko(od, stains); !why.empty())
      throw Error(fmt::format("stain normalisation: cannot fit a macenko target on {}: {}; use photos stained with "
                              "both haematoxylin and eosin, or set [data] stain_reference",
                              what, why));
    for (size_t k = 0; k < 3; ++k) {
      target.haematoxylin[k] = stains.h[int(k)];
      target.eosin[k] = stains.e[int(k)];
    }
    target.max_concentration = {stains.max_h, stains.max_e};
  } else {
    LabSums sums;
    for (const auto& p : photos) sums.add(to_lab(p), stride);
    sums.result(target.lab_mean, target.lab_std);
  }
  return target;
}

bool normalize_macenko(const Planes& p, const StainTarget& target) {
  std::vector<float> od;
  const size_t looked = collect_tissue_od(p, 1, od);
  if (!enough_tissue(od.size() / 3, looked)) return false;
  MacenkoStains source;
  if (!fit_macenko(od, source).empty()) return false;
  // od_out = T diag(target max / source max) P od, with P the source's least-squares
  // inverse and T = [target h, target e]: one 3x3 matrix per photo.
  const double hh = source.h.dot(source.h), he = source.h.dot(source.e), ee = source.e.dot(source.e);
  const double det = hh * ee - he * he;
  const cv::Vec3d ph = (ee * source.h - he * source.e) / det, pe = (hh * source.e - he * source.h) / det;
  const double sh = target.max_concentration[0] / source.max_h, se = target.max_concentration[1] / source.max_e;
  float m[3][3];
  for (int k = 0; k < 3; ++k)
    for (int j = 0; j < 3; ++j)
      m[k][j] = float(-(target.haematoxylin[size_t(k)] * sh * ph[j] + target.eosin[size_t(k)] * se * pe[j]));
  for (const auto& row : m)
    for (float v : row)
      if (!std::isfinite(v)) return false;
  const auto& table = od_table();
  const size_t n = p.size();
  cv::Mat block(3, int(kBlock), CV_32F);
  for (size_t start = 0; start < n; start += kBlock) {
    const size_t count = std::min(kBlock, n - start);
    float* out[3] = {block.ptr<float>(0), block.ptr<float>(1), block.ptr<float>(2)};
    for (size_t i = 0; i < count; ++i) {
      const float r = table[p.c[0][start + i]], g = table[p.c[1][start + i]], b = table[p.c[2][start + i]];
      for (int k = 0; k < 3; ++k) out[k][i] = m[k][0] * r + m[k][1] * g + m[k][2] * b;
    }
    cv::exp(block, block);
    for (int k = 0; k < 3; ++k) {
      uint8_t* dst = p.c[k] + start;
      for (size_t i = 0; i < count; ++i) {
        // Back from OD: v = 256 exp(-od) - 1, rounded and clipped (NaN-free: m is finite).
        const float v = 256.f * out[k][i] - 1.f;
        dst[i] = uint8_t(v <= 0.f ? 0 : v >= 255.f ? 255 : int(v + 0.5f));
      }
    }
  }
  return true;
}

bool normalize_reinhard(const Planes& p, const StainTarget& target) {
  {
    std::vector<float> od;
    const size_t looked = collect_tissue_od(p, 1, od);
    if (!enough_tissue(od.size() / 3, looked)) return false;
  }
  cv::Mat lab = to_lab(p);
  LabSums sums;
  sums.add(lab, 1);
  std::array<double, 3> mean{}, std{};
  sums.result(mean, std);
  std::vector<cv::Mat> channels;
  cv::split(lab, channels);
  for (size_t k = 0; k < 3; ++k) {
    // A flat channel has no spread to match: only its mean moves.
    const double ratio = std[k] > 1e-6 ? target.lab_std[k] / std[k] : 1.0;
    channels[k].convertTo(channels[k], CV_32F, ratio, target.lab_mean[k] - mean[k] * ratio);
  }
  cv::merge(channels, lab);
  cv::Mat rgb;
  cv::cvtColor(lab, rgb, cv::COLOR_Lab2RGB);
  // convertTo rounds and saturates; NaN cannot arise from finite Lab values.
  std::vector<cv::Mat> planes;
  for (int k = 0; k < 3; ++k) planes.emplace_back(p.rows, p.cols, CV_8UC1, p.c[k]);
  cv::Mat rgb8;
  rgb.convertTo(rgb8, CV_8UC3, 255.0);
  cv::split(rgb8, planes);
  return true;
}

bool normalize_planes(const Planes& p, const StainTarget& target) {
  check_method(target.method);
  if (p.size() == 0) return false;
  return target.method == StainMethod::macenko ? normalize_macenko(p, target) : normalize_reinhard(p, target);
}

void check_rgb(const cv::Mat& rgb) {
  if (rgb.type() != CV_8UC3)
    throw Error(fmt::format("stain normalisation: expected an 8-bit RGB image (CV_8UC3) (was type {})", rgb.type()));
}

}  // namespace

std::string StainTarget::key() const {
  if (method == StainMethod::macenko)
    return fmt::format("macenko h {:.9g} {:.9g} {:.9g} e {:.9g} {:.9g} {:.9g} max {:.9g} {:.9g}", haematoxylin[0],
                       haematoxylin[1], haematoxylin[2], eosin[0], eosin[1], eosin[2], max_concentration[0],
                       max_concentration[1]);
  return fmt::format("{} mean {:.9g} {:.9g} {:.9g} std {:.9g} {:.9g} {:.9g}", kStainMethods.name(method), lab_mean[0], lab_mean[1],
                     lab_mean[2], lab_std[0], lab_std[1], lab_std[2]);
}

nlohmann::json stain_target_to_json(const StainTarget& target) {
  return {{"method", kStainMethods.name(target.method)},
          {"haematoxylin", target.haematoxylin},
          {"eosin", target.eosin},
          {"max_concentration", target.max_concentration},
          {"lab_mean", target.lab_mean},
          {"lab_std", target.lab_std},
          {"fitted_on", target.fitted_on}};
}

StainTarget stain_target_from_json(const nlohmann::json& json) {
  try {
    StainTarget target;
    try {
      target.method = kStainMethods.value(json.at("method").get<std::string>());
    } catch (const Error& e) {
      throw Error(fmt::format("stain target: malformed (method: {})", e.what()));
    }
    check_method(target.method);
    target.haematoxylin = json.at("haematoxylin").get<std::array<double, 3>>();
    target.eosin = json.at("eosin").get<std::array<double, 3>>();
    target.max_concentration = json.at("max_concentration").get<std::array<double, 2>>();
    target.lab_mean = json.at("lab_mean").get<std::array<double, 3>>();
    target.lab_std = json.at("lab_std").get<std::array<double, 3>>();
    target.fitted_on = json.at("fitted_on").get<std::string>();
    return target;
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("stain target: malformed ({})", e.what()));
  }
}

StainTarget fit_stain_target(StainMethod method, const std::vector<cv::Mat>& rgb_photos) {
  std::vector<std::vector<cv::Mat>> split(rgb_photos.size());
  std::vector<Planes> planes;
  for (size_t i = 0; i < rgb_photos.size(); ++i) {
    check_rgb(rgb_photos[i]);
    cv::split(rgb_photos[i], split[i]);
    planes.push_back({{split[i][0].data, split[i][1].data, split[i][2].data}, rgb_photos[i].rows, rgb_photos[i].cols});
  }
  return fit_planes(method, planes, fmt::format("{} photo{}", rgb_photos.size(), rgb_photos.size() == 1 ? "" : "s"));
}

StainTarget fit_stain_target(StainMethod method, const torch::Tensor& uint8_images,
                             const std::vector<int64_t>& indices) {
  if (uint8_images.dim() != 4 || uint8_images.size(1) != 3 || uint8_images.scalar_type() != torch::kUInt8 ||
      !uint8_images.is_contiguous())
    throw Error(fmt::format("fit_stain_target: expected contiguous uint8 images of shape (N, 3, H, W) (was {} {})",
                            std::string(c10::toString(uint8_images.scalar_type())), c10::str(uint8_images.sizes())));
  const int rows = int(uint8_images.size(2)), cols = int(uint8_images.size(3));
  const size_t plane = size_t(rows) * size_t(cols);
  uint8_t* base = uint8_images.data_ptr<uint8_t>();
  std::vector<Planes> planes;
  for (int64_t i : indices) {
    if (i < 0 || i >= uint8_images.size(0))
      throw Error(fmt::format("fit_stain_target: index {} is outside the {} images", i, uint8_images.size(0)));
    uint8_t* image = base + size_t(i) * 3 * plane;
    planes.push_back({{image, image + plane, image + 2 * plane}, rows, cols});
  }
  return fit_planes(method, planes,
                    fmt::format("{} training photo{}", indices.size(), indices.size() == 1 ? "" : "s"));
}

bool normalize_stain(const cv::Mat& rgb, const StainTarget& target, cv::Mat& out) {
  check_rgb(rgb);
  std::vector<cv::Mat> planes;
  cv::split(rgb, planes);
  const bool done = normalize_planes({{planes[0].data, planes[1].data, planes[2].data}, rgb.rows, rgb.cols}, target);
  if (!done) {
    if (&out != &rgb) rgb.copyTo(out);
    return false;
  }
  cv::merge(planes, out);
  return true;
}

bool normalize_stain_chw(torch::Tensor chw, const StainTarget& target) {
  if (chw.dim() != 3 || chw.size(0) != 3 || chw.scalar_type() != torch::kUInt8 || !chw.is_contiguous())
    throw Error(fmt::format("normalize_stain_chw: expected a contiguous uint8 (3, H, W) tensor (was {} {})",
                            std::string(c10::toString(chw.scalar_type())), c10::str(chw.sizes())));
  const size_t plane = size_t(chw.size(1)) * size_t(chw.size(2));
  uint8_t* base = chw.data_ptr<uint8_t>();
  return normalize_planes({{base, base + plane, base + 2 * plane}, int(chw.size(1)), int(chw.size(2))}, target);
}

}  // namespace bachlab::host
