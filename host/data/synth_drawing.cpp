// Procedural H&E tissue: the pictures of the synthetic dataset.
//
// Drawing works in stain space, not in RGB: each structure adds haematoxylin (nuclei) or
// eosin (stroma, cytoplasm) optical density, and lumens or fat clear both. Only at the end
// are the densities turned into light through Beer-Lambert with stain vectors, stain
// strengths and brightness drawn at random per image from the same ranges for every class.
// That is what real slides do, and it keeps colour from carrying the label.
//
// All geometry is in units of `u` = image pixels per pixel of a 2048x1536 BACH photo, so
// every size shows the same ~860x645 um field and only its sampling changes. Small images
// are drawn larger and shrunk, as the real photos are shrunk before training, so that
// tiny images are blurred tissue rather than aliased noise.
#include "host/data/synth_drawing.h"

#include "host/data/option_error.h"

#include <bachlab/sdk/error.h>
#include <bachlab/sdk/random.h>

#include <fmt/format.h>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>

namespace bachlab::host {

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kReferenceArea = 2048.0 * 1536.0;
constexpr double kReferencePixelMicrons = 0.42;
constexpr double kMinDrawSide = 256;
constexpr double kFineDrawSide = 384;
constexpr double kMaxDrawPixels = 4.0e6;
constexpr int kMinSide = 8;
constexpr int kMaxSide = 16384;
// The nuclear variant's least u (pixels per BACH pixel): BACH at scale 0.5.
constexpr double kNuclearMinMagnification = 0.5;

// The SDK's portable xoshiro256** (sdk::Rng) with synth's own distributions on top:
// std::uniform_real_distribution and std::normal_distribution differ between standard
// libraries, and the dataset must be the same bytes wherever it is generated. These
// distributions differ from sdk::Rng's (modulo range, 1 - u normal), and changing them
// would change every synthetic image, so they stay here.
class Rng {
 public:
  explicit Rng(uint64_t seed) : bits_(seed) {}

  uint64_t next() { return bits_.next(); }

  /// [0, 1) with 53 random bits.
  double uniform() { return bits_.uniform(); }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  /// Integer in [lo, hi].
  int range(int lo, int hi) { return lo + static_cast<int>(next() % static_cast<uint64_t>(hi - lo + 1)); }
  bool chance(double p) { return uniform() < p; }
  double normal(double mean, double sd) {
    const double u1 = 1.0 - uniform();  // (0, 1], so the log is finite
    const double u2 = uniform();
    return mean + sd * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * kPi * u2);
  }

 private:
  sdk::Rng bits_;
};

// A smooth random field in [lo, hi]: a coarse grid of random values upsampled with cubic
// interpolation, cheap at any size.
cv::Mat smooth_field(Rng& rng, cv::Size size, int cells_x, int cells_y, double lo, double hi) {
  cv::Mat grid(cells_y, cells_x, CV_32F);
  for (int y = 0; y < cells_y; ++y)
    for (int x = 0; x < cells_x; ++x) grid.at<float>(y, x) = static_cast<float>(rng.uniform(lo, hi));
  cv::Mat field;
  cv::resize(grid, field, size, 0, 0, cv::INTER_CUBIC);
  return field;
}

float field_at(const cv::Mat& field, cv::Point2f p) {
  const int x = std::clamp(static_cast<int>(p.x), 0, field.cols - 1);
  const int y = std::clamp(static_cast<int>(p.y), 0, field.rows - 1);
  return field.at<float>(y, x);
}

constexpr int kShift = 4;  // sub-pixel bits for fillPoly, so small nuclei keep their shape

// The stain-density canvas one image is painted on, with the masks tests measure.
struct Canvas {
  Canvas(cv::Size size_, Rng& rng_) : size(size_), rng(rng_) {
    u = std::sqrt(static_cast<double>(size.area()) / kReferenceArea);
    haematoxylin = cv::Mat::zeros(size, CV_32F);
    eosin = cv::Mat::zeros(size, CV_32F);
    nuclei = cv::Mat::zeros(size, CV_8U);
    lumen = cv::Mat::zeros(size, CV_8U);
  }

  cv::Size size;
  Rng& rng;
  double u = 1;
  // The share of a BACH photo's field the canvas shows: 1 except in the nuclear variant,
  // whose small images keep their magnification and show less tissue. Counts of scattered
  // things scale by it (scaled() is exact for 1, so the default variant is unchanged).
  double field = 1;
  int scaled(int count) const { return field == 1 ? count : std::max(1, static_cast<int>(std::lround(count * field))); }
  cv::Mat haematoxylin, eosin, nuclei, lumen;
  cv::Mat flow;  // local fibre direction (radians), shared by stroma, fibroblasts and cords

  cv::Point2f random_point(double margin = 0.05) {
    return {static_cast<float>(rng.uniform(-margin, 1 + margin) * size.width),
            static_cast<float>(rng.uniform(-margin, 1 + margin) * size.height)};
  }

  // A closed outline around `c`: an ellipse (semi-axes a, b in pixels, rotated by `angle`
  // radians) whose radius wobbles smoothly by up to `wobble` of itself. Low-order harmonics
  // keep the outline organic rather than spiky.
  // `draw` is the generator to use (default: the canvas's).
  std::vector<cv::Point> outline(cv::Point2f c, double a, double b, double angle, double wobble, Rng* draw = nullptr) {
    Rng& g = draw ? *draw : rng;
    const int n = std::clamp(static_cast<int>(2 * kPi * std::max(a, b) / 2.0), 10, 160);
    double amp[4], phase[4];
    for (int k = 0; k < 4; ++k) {
      amp[k] = wobble * g.uniform(0.2, 1.0) / (1 + k);
      phase[k] = g.uniform(0, 2 * kPi);
    }
    std::vector<cv::Point> points(n);
    const double ca = std::cos(angle), sa = std::sin(angle);
    for (int i = 0; i < n; ++i) {
      const double t = 2 * kPi * i / n;
      double scale = 1;
      for (int k = 0; k < 4; ++k) scale += amp[k] * std::sin((k + 2) * t + phase[k]);
      const double x = a * scale * std::cos(t), y = b * scale * std::sin(t);
      points[i] = cv::Point(static_cast<int>(std::lround((c.x + x * ca - y * sa) * (1 << kShift))),
                            static_cast<int>(std::lround((c.y + x * sa + y * ca) * (1 << kShift))));
    }
    return points;
  }

  void fill(const std::vector<cv::Point>& shape, double h, double e) {
    const std::vector<std::vector<cv::Point>> shapes{shape};
    cv::fillPoly(haematoxylin, shapes, cv::Scalar(h), cv::LINE_8, kShift);
    cv::fillPoly(eosin, shapes, cv::Scalar(e), cv::LINE_8, kShift);
  }

  void clear(const std::vector<cv::Point>& shape, bool is_lumen) {
    fill(shape, 0, 0);
    const std::vector<std::vector<cv::Point>> shapes{shape};
    cv::fillPoly(nuclei, shapes, cv::Scalar(0), cv::LINE_8, kShift);
    if (is_lumen) cv::fillPoly(lumen, shapes, cv::Scalar(255), cv::LINE_8, kShift);
  }

  // One nucleus: radius r (pixels) along its short axis, `aspect` >= 1, `irregular` the
  // outline wobble (0 = smooth ellipse, 0.35 = pleomorphic), `density` its haematoxylin.
  void nucleus(cv::Point2f c, double r, double aspect, double angle, double irregular, double density,
               bool nucleolus = false) {
    if (r * aspect < 0.3) return;
    const auto shape = outline(c, r * aspect, r, angle, irregular);
    const std::vector<std::vector<cv::Point>> shapes{shape};
    cv::fillPoly(haematoxylin, shapes, cv::Scalar(density), cv::LINE_8, kShift);
    cv::fillPoly(eosin, shapes, cv::Scalar(0.08), cv::LINE_8, kShift);
    cv::fillPoly(nuclei, shapes, cv::Scalar(255), cv::LINE_8, kShift);
    // Chromatin gathers on the nuclear membrane, which shows as a darker rim when in focus.
    if (r > 4) cv::polylines(haematoxylin, shapes, true, cv::Scalar(density * 1.25), std::max(1, static_cast<int>(std::lround(1.5 * u))),
                             cv::LINE_8, kShift);
    if (nucleolus && r > 1.5) {
      const cv::Point2f offset(static_cast<float>(rng.uniform(-0.3, 0.3) * r), static_cast<float>(rng.uniform(-0.3, 0.3) * r));
      const double nr = r * rng.uniform(0.15, 0.25);
      cv::ellipse(haematoxylin, cv::RotatedRect(c + offset, cv::Size2f(2 * nr, 2 * nr), 0), cv::Scalar(density * 1.6),
                  cv::FILLED);
    }
  }

  // A fibre-aligned thin nucleus: fibroblasts in stroma, myoepithelial cells on a duct.
  void spindle(cv::Point2f c, double angle, double density) {
    nucleus(c, u * rng.uniform(2.8, 4.0), rng.uniform(3.0, 4.5), angle, 0.05, density);
  }

  void lymphocyte(cv::Point2f c) { nucleus(c, u * rng.uniform(5.5, 7.5), rng.uniform(1.0, 1.15), 0, 0.05, rng.uniform(1.7, 2.1)); }
};

// Points every `spacing` pixels along an ellipse, with the outward normal angle of each.
struct RingPoint {
  cv::Point2f p;
  double normal;
};
std::vector<RingPoint> ring(cv::Point2f c, double a, double b, double angle, double spacing, double phase) {
  const double perimeter = kPi * (3 * (a + b) - std::sqrt((3 * a + b) * (a + 3 * b)));
  const int n = std::max(3, static_cast<int>(perimeter / spacing));
  std::vector<RingPoint> points;
  points.reserve(n);
  const double ca = std::cos(angle), sa = std::sin(angle);
  for (int i = 0; i < n; ++i) {
    const double t = 2 * kPi * i / n + phase;
    const double x = a * std::cos(t), y = b * std::sin(t);
    const double nx = b * std::cos(t), ny = a * std::sin(t);  // outward normal before rotation
    points.push_back({cv::Point2f(static_cast<float>(c.x + x * ca - y * sa), static_cast<float>(c.y + x * sa + y * ca)),
                      std::atan2(nx * sa + ny * ca, nx * ca - ny * sa)});
  }
  return points;
}

// Circles already holding a structure, so glands and ducts do not pile on each other.
class Occupancy {
 public:
  bool free(cv::Point2f c, double r) const {
    for (const auto& [other, other_r] : placed_)
      if (std::hypot(c.x - other.x, c.y - other.y) < (r + other_r)) return false;
    return true;
  }
  void add(cv::Point2f c, double r) { placed_.push_back({c, r}); }
  // A random free spot for radius r near `near` (within `spread`), or anywhere (up to
  // `margin` of the image beyond its border; negative keeps it inside) when spread is 0.
  // Gives up after a few tries, which only thins out a crowded image.
  std::optional<cv::Point2f> place(Canvas& canvas, double r, cv::Point2f near = {}, double spread = 0,
                                   double margin = 0.05) {
    for (int attempt = 0; attempt < 30; ++attempt) {
      cv::Point2f c;
      if (spread > 0) {
        const double angle = canvas.rng.uniform(0, 2 * kPi), d = spread * std::sqrt(canvas.rng.uniform());
        c = near + cv::Point2f(static_cast<float>(d * std::cos(angle)), static_cast<float>(d * std::sin(angle)));
      } else {
        c = canvas.random_point(margin);
      }
      if (free(c, r)) {
        add(c, r);
        return c;
      }
    }
    return std::nullopt;
  }

 private:
  std::vector<std::pair<cv::Point2f, double>> placed_;
};

// ---- Tissue common to every class --------------------------------------------------------

void draw_stroma(Canvas& c) {
  Rng& rng = c.rng;
  const double u = c.u;
  c.flow = smooth_field(rng, c.size, 4, 3, -1.6, 1.6);
  c.flow += rng.uniform(0, kPi);

  // Collagen: wavy bundles following the flow, on a layer that sets how dense stroma is.
  cv::Mat fibres = cv::Mat::zeros(c.size, CV_32F);
  const int bundles = c.scaled(static_cast<int>(rng.uniform(2500, 4000)));
  for (int i = 0; i < bundles; ++i) {
    cv::Point2f p = c.random_point(0.1);
    const int steps = rng.range(6, 18);
    const double step = u * rng.uniform(12, 22), wave = rng.uniform(0.2, 0.6), phase = rng.uniform(0, 2 * kPi);
    std::vector<cv::Point> line;
    for (int s = 0; s < steps; ++s) {
      line.emplace_back(static_cast<int>(std::lround(p.x * (1 << kShift))), static_cast<int>(std::lround(p.y * (1 << kShift))));
      const double angle = field_at(c.flow, p) + wave * std::sin(s * 1.3 + phase);
      p += cv::Point2f(static_cast<float>(step * std::cos(angle)), static_cast<float>(step * std::sin(angle)));
    }
    const int thickness = std::max(1, static_cast<int>(std::lround(u * rng.uniform(4, 12))));
    cv::polylines(fibres, std::vector<std::vector<cv::Point>>{line}, false, cv::Scalar(rng.uniform(0.3, 1.0)), thickness,
                  cv::LINE_8, kShift);
  }
  cv::GaussianBlur(fibres, fibres, cv::Size(), std::max(0.5, 1.5 * u));

  const cv::Mat density = smooth_field(rng, c.size, 6, 5, 0.7, 1.15);
  const double base = rng.uniform(0.4, 0.7);
  // Fine grain so that stroma is not flat paint at full resolution.
  cv::Mat grain(c.size, CV_32F);
  cv::RNG(rng.next()).fill(grain, cv::RNG::UNIFORM, 0.8, 1.2);
  cv::GaussianBlur(grain, grain, cv::Size(), std::max(0.5, 1.5 * u));
  c.eosin = base * density.mul(0.45 + 0.75 * cv::min(fibres, 1.2)).mul(grain);
  c.haematoxylin = cv::Mat(c.size, CV_32F, cv::Scalar(rng.uniform(0.02, 0.06)));
}

// Fat: white space in every class at the same rate, so that brightness is no class cue
// and lumens are not the only white.
void draw_fat(Canvas& c) {
  Rng& rng = c.rng;
  const double u = c.u;
  if (!rng.chance(0.45)) return;
  const cv::Point2f centre = c.random_point(0.1);
  const double spread = u * rng.uniform(120, 380);
  const int cells = rng.range(4, 26);
  for (int i = 0; i < cells; ++i) {
    const double angle = rng.uniform(0, 2 * kPi), d = spread * std::sqrt(rng.uniform());
    const cv::Point2f p = centre + cv::Point2f(static_cast<float>(d * std::cos(angle)), static_cast<float>(d * std::sin(angle)));
    const double r = u * rng.uniform(45, 95);
    const auto cell = c.outline(p, r, r * rng.uniform(0.75, 1.0), rng.uniform(0, kPi), 0.12);
    c.clear(cell, false);
    // The adipocyte membrane: a thin pink rim left between neighbours.
    cv::polylines(c.eosin, std::vector<std::vector<cv::Point>>{cell}, true, cv::Scalar(0.45),
                  std::max(1, static_cast<int>(std::lround(2 * u))), cv::LINE_8, kShift);
  }
}

// Cutting artefacts, over everything drawn: tears, and bare glass where the section ends.
void draw_section_edges(Canvas& c) {
  Rng& rng = c.rng;
  const double u = c.u;
  const int tears = rng.range(0, 3);
  for (int i = 0; i < tears; ++i) {
    const cv::Point2f p = c.random_point();
    const double length = u * rng.uniform(80, 300);
    c.clear(c.outline(p, length, length * rng.uniform(0.03, 0.08), rng.uniform(0, kPi), 0.25), false);
  }
  if (rng.chance(0.2)) {
    const double w = c.size.width, h = c.size.height;
    const int side = rng.range(0, 3);
    const double depth = rng.uniform(0.05, 0.2);
    const cv::Point2f centre = side == 0   ? cv::Point2f(static_cast<float>(-w * (0.5 - depth)), static_cast<float>(h / 2))
                               : side == 1 ? cv::Point2f(static_cast<float>(w * (1.5 - depth)), static_cast<float>(h / 2))
                               : side == 2 ? cv::Point2f(static_cast<float>(w / 2), static_cast<float>(-h * (0.5 - depth)))
                                           : cv::Point2f(static_cast<float>(w / 2), static_cast<float>(h * (1.5 - depth)));
    const double r = side < 2 ? w / 2 : h / 2;
    c.clear(c.outline(centre, side < 2 ? r : w, side < 2 ? h : r, 0, 0.08), false);
  }
}

void draw_stromal_cells(Canvas& c) {
  Rng& rng = c.rng;
  const double u = c.u;
  const int fibroblasts = c.scaled(rng.range(120, 380));
  for (int i = 0; i < fibroblasts; ++i) {
    const cv::Point2f p = c.random_point();
    c.spindle(p, field_at(c.flow, p) + rng.normal(0, 0.2), rng.uniform(0.9, 1.3));
  }
  // Lymphocytes, scattered and in small clusters; inflammation is in every class.
  const int scattered = c.scaled(rng.range(20, 200));
  for (int i = 0; i < scattered; ++i) c.lymphocyte(c.random_point());
  const int clusters = rng.range(0, 3);
  for (int k = 0; k < clusters; ++k) {
    const cv::Point2f centre = c.random_point();
    const double spread = u * rng.uniform(50, 140);
    const int n = rng.range(25, 110);
    for (int i = 0; i < n; ++i) {
      const double angle = rng.uniform(0, 2 * kPi), d = spread * std::sqrt(rng.uniform());
      c.lymphocyte(centre + cv::Point2f(static_cast<float>(d * std::cos(angle)), static_cast<float>(d * std::sin(angle))));
    }
  }
}

// ---- Glands ------------------------------------------------------------------------------

struct GlandShape {
  double lumen_a, lumen_b;    // lumen semi-axes (pixels); 0 = a closed acinus
  double epithelium;          // thickness of the cell layer around the lumen (pixels)
  double nucleus_r;           // luminal nucleus radius (pixels)
  double wobble = 0.06;       // outline irregularity
  bool second_layer = false;  // hyperplasia: a second row of luminal cells
};

// A benign gland: lumen, one (or two) rows of regular columnar nuclei, and the
// myoepithelial layer of flat nuclei on the outside - the ring that makes it "intact".
void draw_gland(Canvas& c, cv::Point2f centre, double angle, const GlandShape& g) {
  Rng& rng = c.rng;
  const double outer_a = g.lumen_a + g.epithelium, outer_b = g.lumen_b + g.epithelium;
  c.fill(c.outline(centre, outer_a, outer_b, angle, g.wobble * 0.5), rng.uniform(0.10, 0.16), rng.uniform(0.28, 0.4));

  const double spacing = g.nucleus_r * rng.uniform(2.3, 2.8);
  auto row = [&](double inset) {
    for (const auto& q : ring(centre, std::max(outer_a - inset, g.nucleus_r), std::max(outer_b - inset, g.nucleus_r), angle,
                              spacing, rng.uniform(0, 1))) {
      const cv::Point2f jitter(static_cast<float>(rng.normal(0, 0.08 * g.nucleus_r)), static_cast<float>(rng.normal(0, 0.08 * g.nucleus_r)));
      c.nucleus(q.p + jitter, g.nucleus_r * rng.uniform(0.9, 1.1), rng.uniform(1.15, 1.45), q.normal + rng.normal(0, 0.12),
                0.05, rng.uniform(1.05, 1.3));
    }
  };
  row(g.epithelium * (g.second_layer ? 0.3 : 0.5));
  if (g.second_layer) row(g.epithelium * 0.7);
  for (const auto& q : ring(centre, outer_a, outer_b, angle, g.nucleus_r * rng.uniform(4, 6), rng.uniform(0, 1)))
    c.nucleus(q.p, g.nucleus_r * 0.45, 2.6, q.normal + kPi / 2, 0.05, rng.uniform(1.0, 1.25));

  if (g.lumen_a > 0) {
    c.clear(c.outline(centre, g.lumen_a, g.lumen_b, angle, g.wobble), true);
    if (rng.chance(0.35))  // pale secretion
      c.fill(c.outline(centre, g.lumen_a * 0.6, g.lumen_b * 0.6, angle, 0.2), 0.01, rng.uniform(0.08, 0.18));
  }
}

GlandShape acinus(Canvas& c) {
  Rng& rng = c.rng;
  GlandShape g;
  const double lumen = rng.chance(0.15) ? 0 : c.u * rng.uniform(8, 30);
  g.lumen_a = lumen;
  g.lumen_b = lumen * rng.uniform(0.7, 1.0);
  g.epithelium = c.u * rng.uniform(22, 30);
  g.nucleus_r = c.u * rng.uniform(6.5, 8.5);
  return g;
}

// Normal: terminal duct-lobular units - clusters of small acini in loose stroma - in
// plenty of dense stroma, now and then with a small duct.
void draw_normal(Canvas& c) {
  Rng& rng = c.rng;
  const double u = c.u;
  Occupancy occupied;
  const int lobules = rng.range(1, 3);
  for (int l = 0; l < lobules; ++l) {
    const double radius = u * rng.uniform(220, 400);
    const cv::Point2f centre = c.random_point(0.0);
    // Intralobular stroma is loose and pale next to the dense interlobular collagen.
    const auto lobule = c.outline(centre, radius * 1.1, radius * rng.uniform(0.7, 1.0), rng.uniform(0, kPi), 0.15);
    cv::Mat mask = cv::Mat::zeros(c.size, CV_8U);
    cv::fillPoly(mask, std::vector<std::vector<cv::Point>>{lobule}, cv::Scalar(255), cv::LINE_8, kShift);
    c.eosin.setTo(cv::Scalar(rng.uniform(0.2, 0.3)), mask);
    for (int i = 0, n = rng.range(8, 24); i < n; ++i) {
      const GlandShape g = acinus(c);
      if (auto p = occupied.place(c, (g.lumen_a + g.epithelium) * 1.05, centre, radius * 0.9))
        draw_gland(c, *p, rng.uniform(0, kPi), g);
    }
  }
  for (int i = 0, n = rng.range(0, 2); i < n; ++i) {
    GlandShape g;
    g.lumen_a = u * rng.uniform(30, 70);
    g.lumen_b = g.lumen_a * rng.uniform(0.3, 0.8);
    g.epithelium = u * rng.uniform(22, 30);
    g.nucleus_r = u * rng.uniform(6.5, 8.5);
    if (auto p = occupied.place(c, g.lumen_a + g.epithelium)) draw_gland(c, *p, rng.uniform(0, kPi), g);
  }
}

// Benign (fibroadenoma, adenosis, usual hyperplasia): more glands, larger and often
// elongated or slit-like, still with regular nuclei and an intact myoepithelial ring.
void draw_benign(Canvas& c) {
  Rng& rng = c.rng;
  const double u = c.u;
  Occupancy occupied;
  const bool clustered = rng.chance(0.35);
  std::vector<cv::Point2f> clusters;
  for (int k = 0, n = rng.range(1, 3); k < n; ++k) clusters.push_back(c.random_point(0.0));
  for (int i = 0, n = rng.range(10, 30); i < n; ++i) {
    GlandShape g;
    g.lumen_a = u * rng.uniform(25, 100);
    g.lumen_b = g.lumen_a * rng.uniform(0.25, 0.9);
    g.epithelium = u * rng.uniform(24, 36);
    g.nucleus_r = u * rng.uniform(7.0, 9.5);
    g.wobble = rng.uniform(0.04, 0.14);
    g.second_layer = rng.chance(0.3);
    const double extent = g.lumen_a + g.epithelium;
    const auto p = clustered ? occupied.place(c, extent, clusters[i % clusters.size()], u * 450) : occupied.place(c, extent);
    if (p) draw_gland(c, *p, rng.uniform(0, kPi), g);
  }
}

// ---- Carcinoma ---------------------------------------------------------------------------

struct Atypia {
  double radius;     // typical nucleus radius (pixels)
  double spread;     // pleomorphism: radii vary by this factor either way
  double irregular;  // outline wobble
};

void atypical_nucleus(Canvas& c, cv::Point2f p, const Atypia& a) {
  Rng& rng = c.rng;
  const double r = a.radius * std::exp(rng.uniform(-std::log(a.spread), std::log(a.spread)));
  c.nucleus(p, r, rng.uniform(1.0, 1.7), rng.uniform(0, kPi), a.irregular * rng.uniform(0.5, 1.0), rng.uniform(1.25, 1.85),
            rng.chance(0.35));
}

// Tumour cells at `centres`: all the cytoplasm first, so a neighbour never paints over a
// nucleus, then the nuclei.
void tumour_cells(Canvas& c, const std::vector<cv::Point2f>& centres, const Atypia& a) {
  Rng& rng = c.rng;
  for (const auto& p : centres) {
    const double r = a.radius * rng.uniform(1.6, 2.1);
    c.fill(c.outline(p, r, r * rng.uniform(0.7, 1.0), rng.uniform(0, kPi), 0.15), rng.uniform(0.12, 0.2), rng.uniform(0.25, 0.35));
  }
  for (const auto& p : centres) atypical_nucleus(c, p, a);
}

// Crowded tumour cells filling `shape`: cytoplasm, then nuclei on a jittered hexagonal
// grid clipped to the shape.
void fill_with_tumour(Canvas& c, const std::vector<cv::Point>& shape, const Atypia& a, double packing) {
  Rng& rng = c.rng;
  c.fill(shape, rng.uniform(0.12, 0.2), rng.uniform(0.25, 0.35));
  cv::Rect box = cv::boundingRect(shape);
  box = cv::Rect(box.x >> kShift, box.y >> kShift, (box.width >> kShift) + 1, (box.height >> kShift) + 1);
  std::vector<cv::Point2f> contour;
  for (const auto& q : shape) contour.emplace_back(q.x / static_cast<float>(1 << kShift), q.y / static_cast<float>(1 << kShift));
  const double spacing = a.radius * packing;
  int row = 0;
  for (double y = box.y; y < box.y + box.height; y += spacing * 0.866, ++row) {
    for (double x = box.x + (row % 2) * spacing / 2; x < box.x + box.width; x += spacing) {
      const cv::Point2f p(static_cast<float>(x + rng.normal(0, 0.25 * spacing)), static_cast<float>(y + rng.normal(0, 0.25 * spacing)));
      if (cv::pointPolygonTest(contour, p, true) > a.radius * 0.6) atypical_nucleus(c, p, a);
    }
  }
}

// In situ carcinoma: a few large ducts packed with crowded atypical nuclei, but the duct
// is intact - basement membrane and myoepithelial ring all round - and nothing has left it.
void draw_in_situ(Canvas& c) {
  Rng& rng = c.rng;
  const double u = c.u;
  Occupancy occupied;
  const Atypia atypia{u * rng.uniform(9.5, 13.5), rng.uniform(1.2, 1.45), rng.uniform(0.12, 0.28)};
  for (int i = 0, n = rng.range(1, 4); i < n; ++i) {
    const double a = u * rng.uniform(150, 330), b = a * rng.uniform(0.6, 1.0), angle = rng.uniform(0, kPi);
    // Ducts sit well inside the field: a duct cut off by the border would show no ring.
    const auto p = occupied.place(c, a * 1.05, {}, 0, -0.15);
    if (!p) continue;
    const auto outer = c.outline(*p, a, b, angle, 0.05);
    fill_with_tumour(c, outer, atypia, rng.uniform(2.0, 2.6));
    const double pattern = rng.uniform();
    if (pattern < 0.3) {
      // Cribriform: round punched-out spaces inside the duct.
      for (int k = 0, n_holes = rng.range(3, 10); k < n_holes; ++k) {
        const double angle_k = rng.uniform(0, 2 * kPi), d = rng.uniform(0, 0.6);
        const cv::Point2f q = *p + cv::Point2f(static_cast<float>(a * d * std::cos(angle_k)), static_cast<float>(b * d * std::sin(angle_k)));
        const double r = u * rng.uniform(14, 40);
        c.clear(c.outline(q, r, r * rng.uniform(0.8, 1.0), 0, 0.05), true);
      }
    } else if (pattern < 0.55) {
      // Comedo necrosis: a pink core of dead cells with dark nuclear dust.
      const double f = rng.uniform(0.3, 0.5);
      c.fill(c.outline(*p, a * f, b * f, angle, 0.15), 0.05, rng.uniform(0.45, 0.7));
      for (int k = 0, n_dust = static_cast<int>(80 * f * a / (150 * u)); k < n_dust; ++k) {
        const double angle_k = rng.uniform(0, 2 * kPi), d = f * std::sqrt(rng.uniform());
        const cv::Point2f q = *p + cv::Point2f(static_cast<float>(a * d * std::cos(angle_k)), static_cast<float>(b * d * std::sin(angle_k)));
        const double r = u * rng.uniform(1.5, 3.5);
        cv::ellipse(c.haematoxylin, cv::RotatedRect(q, cv::Size2f(static_cast<float>(2 * r), static_cast<float>(2 * r)), 0),
                    cv::Scalar(1.6), cv::FILLED);
      }
    }
    // The intact boundary: an eosin-dense basement membrane with flat myoepithelial nuclei.
    cv::polylines(c.eosin, std::vector<std::vector<cv::Point>>{outer}, true, cv::Scalar(rng.uniform(0.8, 1.1)),
                  std::max(1, static_cast<int>(std::lround(u * 4))), cv::LINE_8, kShift);
    for (const auto& q : ring(*p, a, b, angle, u * rng.uniform(28, 40), rng.uniform(0, 1)))
      c.nucleus(q.p, u * 3.5, 2.8, q.normal + kPi / 2, 0.05, rng.uniform(1.0, 1.25));
  }
  // Surviving normal acini nearby, as in many real in situ photos.
  if (rng.chance(0.4)) {
    for (int i = 0, n = rng.range(2, 8); i < n; ++i) {
      const GlandShape g = acinus(c);
      if (auto p = occupied.place(c, g.lumen_a + g.epithelium)) draw_gland(c, *p, rng.uniform(0, kPi), g);
    }
  }
}

// Invasive carcinoma: pleomorphic tumour cells loose in the stroma - single cells, cords,
// and nests without any boundary ring, often with a retraction cleft around them.
void draw_invasive(Canvas& c) {
  Rng& rng = c.rng;
  const double u = c.u;
  const Atypia atypia{u * rng.uniform(9.5, 14), rng.uniform(1.3, 1.7), rng.uniform(0.2, 0.4)};
  Occupancy occupied;

  auto nest = [&](cv::Point2f p, double r, double wobble) {
    const double b = r * rng.uniform(0.5, 1.0), angle = rng.uniform(0, kPi);
    if (rng.chance(0.6)) {
      const double gap = u * rng.uniform(4, 10);
      c.clear(c.outline(p, r + gap, b + gap, angle, wobble), false);
    }
    fill_with_tumour(c, c.outline(p, r, b, angle, wobble), atypia, rng.uniform(2.0, 2.7));
  };
  if (rng.chance(0.25)) {
    // Solid sheets: as crowded as an in situ duct but with a ragged, ringless edge.
    for (int i = 0, n = rng.range(1, 2); i < n; ++i) {
      const double r = u * rng.uniform(150, 280);
      if (auto p = occupied.place(c, r)) nest(*p, r, rng.uniform(0.2, 0.35));
    }
  }
  for (int i = 0, n = c.scaled(rng.range(5, 20)); i < n; ++i) {
    const double r = u * rng.uniform(35, 120);
    if (auto p = occupied.place(c, r)) nest(*p, r, rng.uniform(0.15, 0.35));
  }
  std::vector<cv::Point2f> loose;
  // Cords: single files of cells following the stroma.
  for (int i = 0, n = c.scaled(rng.range(10, 35)); i < n; ++i) {
    cv::Point2f p = c.random_point();
    const double step = atypia.radius * rng.uniform(2.6, 3.4);
    double angle = field_at(c.flow, p);
    for (int k = 0, len = rng.range(3, 10); k < len; ++k) {
      loose.push_back(p);
      angle += rng.normal(0, 0.3);
      p += cv::Point2f(static_cast<float>(step * std::cos(angle)), static_cast<float>(step * std::sin(angle)));
    }
  }
  for (int i = 0, n = c.scaled(rng.range(60, 250)); i < n; ++i) loose.push_back(c.random_point());
  tumour_cells(c, loose, atypia);
}

// ---- The nuclear variant: Benign and InSitu on one architecture ---------------------------

// How a lesion's epithelial nuclei look. Both looks pack nuclei at the same spacing per
// nucleus radius and with the same mean haematoxylin, so the nuclear area fraction and the
// stain mass - all that survives a strong downscale - match; size, shape and chromatin
// texture differ, which only shows at a few pixels per nucleus.
struct NuclearLook {
  double radius;     // typical radius (pixels)
  double spread;     // pleomorphism: radii vary by this factor either way
  double irregular;  // outline wobble
  double max_aspect;
  bool coarse;       // clumped chromatin and nucleoli (atypia) instead of fine, even chromatin
};

void lesion_nucleus(Canvas& c, Rng& look, cv::Point2f p, const NuclearLook& n) {
  const double r = n.radius * std::exp(look.uniform(-std::log(n.spread), std::log(n.spread)));
  const double aspect = look.uniform(1.0, n.max_aspect), angle = look.uniform(0, kPi);
  const double density = look.uniform(1.1, 1.3);
  const auto shape = c.outline(p, r * aspect, r, angle, n.irregular * look.uniform(0.5, 1.0), &look);
  const std::vector<std::vector<cv::Point>> shapes{shape};
  // Coarse chromatin: a paler nucleus with dark clumps, the same mean density overall.
  cv::fillPoly(c.haematoxylin, shapes, cv::Scalar(n.coarse ? density * 0.72 : density), cv::LINE_8, kShift);
  cv::fillPoly(c.eosin, shapes, cv::Scalar(0.08), cv::LINE_8, kShift);
  cv::fillPoly(c.nuclei, shapes, cv::Scalar(255), cv::LINE_8, kShift);
  if (!n.coarse) return;
  cv::polylines(c.haematoxylin, shapes, true, cv::Scalar(density * 1.5), std::max(1, static_cast<int>(std::lround(0.8 * c.u))),
                cv::LINE_8, kShift);
  for (int k = 0, clumps = look.range(3, 6); k < clumps; ++k) {
    const double d = 0.6 * r * std::sqrt(look.uniform()), t = look.uniform(0, 2 * kPi);
    const cv::Point2f q = p + cv::Point2f(static_cast<float>(d * std::cos(t)), static_cast<float>(d * std::sin(t)));
    const double cr = r * look.uniform(0.14, 0.22);
    cv::ellipse(c.haematoxylin, cv::RotatedRect(q, cv::Size2f(static_cast<float>(2 * cr), static_cast<float>(2 * cr)), 0),
                cv::Scalar(density * 1.9), cv::FILLED);
  }
}

// Benign or in situ at the same architecture: glands with lumens, an epithelial band two or
// three nuclei deep, and an intact myoepithelial ring. `rng` draws the layout only (the same
// sequence of draws whatever the class), `look` every nucleus, so the layout's statistics
// cannot depend on the class.
void draw_glandular_lesion(Canvas& c, bool atypical) {
  Rng& rng = c.rng;
  Rng look(rng.next());
  const double u = c.u;
  const NuclearLook nuclei = atypical ? NuclearLook{u * look.uniform(8.5, 10.0), 1.4, look.uniform(0.2, 0.35), 1.6, true}
                                      : NuclearLook{u * look.uniform(5.0, 6.0), 1.08, 0.04, 1.3, false};
  Occupancy occupied;
  for (int i = 0, n = c.scaled(rng.range(10, 26)); i < n; ++i) {
    const double lumen_a = u * rng.uniform(20, 80), lumen_b = lumen_a * rng.uniform(0.35, 0.9);
    const double epithelium = u * rng.uniform(30, 42), angle = rng.uniform(0, kPi), wobble = rng.uniform(0.03, 0.1);
    const double outer_a = lumen_a + epithelium, outer_b = lumen_b + epithelium;
    const auto p = occupied.place(c, outer_a * 1.08, {}, 0, 0.0);
    if (!p) continue;
    c.fill(c.outline(*p, outer_a, outer_b, angle, wobble * 0.5), rng.uniform(0.10, 0.16), rng.uniform(0.28, 0.4));
    // Nuclei on a jittered hexagonal grid clipped to the epithelial band.
    const double spacing = nuclei.radius * 2.5, ca = std::cos(angle), sa = std::sin(angle);
    const double margin = nuclei.radius * 0.9;
    int row = 0;
    for (double y = -outer_a; y <= outer_a; y += spacing * 0.866, ++row) {
      for (double x = -outer_a + (row % 2) * spacing / 2; x <= outer_a; x += spacing) {
        const double jx = x + look.normal(0, 0.15 * spacing), jy = y + look.normal(0, 0.15 * spacing);
        auto inside = [&](double a, double b, double grow) {
          return (jx * jx) / ((a + grow) * (a + grow)) + (jy * jy) / ((b + grow) * (b + grow)) <= 1.0;
        };
        if (!inside(outer_a, outer_b, -margin) || inside(lumen_a, lumen_b, margin * 0.5)) continue;
        const cv::Point2f q(static_cast<float>(p->x + jx * ca - jy * sa), static_cast<float>(p->y + jx * sa + jy * ca));
        lesion_nucleus(c, look, q, nuclei);
      }
    }
    // The intact myoepithelial ring, alike in both classes.
    for (const auto& q : ring(*p, outer_a, outer_b, angle, u * rng.uniform(22, 30), rng.uniform(0, 1)))
      c.nucleus(q.p, u * 3.2, 2.6, q.normal + kPi / 2, 0.05, rng.uniform(1.0, 1.25));
    c.clear(c.outline(*p, lumen_a, lumen_b, angle, wobble), true);
  }
}

// ---- Staining and imaging ----------------------------------------------------------------

cv::Size draw_size(int width, int height) {
  // Small images are drawn at twice their size (at least kMinDrawSide, at most
  // kFineDrawSide on the short side) and shrunk: enough for the shrink to average the
  // drawing into tissue-like texture, without paying for detail nobody will see.
  const double side = std::min(width, height);
  double scale = side < kFineDrawSide ? std::clamp(2 * side, kMinDrawSide, kFineDrawSide) / side : 1.0;
  scale = std::min(scale, std::max(1.0, std::sqrt(kMaxDrawPixels / (static_cast<double>(width) * height))));
  return {static_cast<int>(std::lround(width * scale)), static_cast<int>(std::lround(height * scale))};
}

// Beer-Lambert: light = white * exp(-(H*h + E*e)) per channel, with per-image stain
// vectors, stain strengths, brightness, tint, uneven illumination, focus and noise, all
// drawn from the same ranges whatever the class.
// The ranges of the per-image stain draw: the default's, or the nuclear variant's wider ones
// (stain variation strong enough that stain normalisation matters).
struct StainRanges {
  double vector_jitter = 0.08;
  double h_lo = 0.8, h_hi = 1.5, e_lo = 0.7, e_hi = 1.5;
};

cv::Mat stain(Canvas& c, cv::Size out_size, const StainRanges& ranges = {}) {
  Rng& rng = c.rng;
  const double u = c.u;
  // Chromatin texture: nuclei are speckled, not flat.
  cv::Mat speckle(c.size, CV_32F);
  cv::RNG(rng.next()).fill(speckle, cv::RNG::UNIFORM, 0.55, 1.45);
  cv::GaussianBlur(speckle, speckle, cv::Size(), std::max(0.5, 0.9 * u));
  cv::Mat haematoxylin = c.haematoxylin.mul(speckle);

  // Reference H&E optical-density vectors (Macenko et al., 2009), jittered per image.
  cv::Vec3d h(0.5626, 0.7201, 0.4062), e(0.2159, 0.8012, 0.5581);
  for (int k = 0; k < 3; ++k) {
    h[k] = std::max(0.05, h[k] + rng.uniform(-ranges.vector_jitter, ranges.vector_jitter));
    e[k] = std::max(0.05, e[k] + rng.uniform(-ranges.vector_jitter, ranges.vector_jitter));
  }
  h /= cv::norm(h);
  e /= cv::norm(e);
  const double h_strength = rng.uniform(ranges.h_lo, ranges.h_hi), e_strength = rng.uniform(ranges.e_lo, ranges.e_hi);
  const cv::Mat light = smooth_field(rng, c.size, 3, 3, 0.94, 1.04);

  std::vector<cv::Mat> channels(3);
  for (int k = 0; k < 3; ++k) {
    cv::Mat od = haematoxylin * (h_strength * h[k]) + c.eosin * (e_strength * e[k]);
    cv::exp(-od, channels[k]);
    channels[k] = channels[k].mul(light, 255.0 * rng.uniform(0.96, 1.03));
  }
  // The camera's auto-exposure: the mean luminance is set to a random target, as a
  // microscope camera does, so crowded dark tumour and white lumens cannot show up as
  // overall brightness.
  const double luminance = 0.299 * cv::mean(channels[0])[0] + 0.587 * cv::mean(channels[1])[0] + 0.114 * cv::mean(channels[2])[0];
  const double gain = std::clamp(rng.uniform(150, 205) / std::max(luminance, 1.0), 0.5, 2.0);
  cv::Mat rgb;
  cv::merge(channels, rgb);
  rgb *= gain;
  const double focus = u * rng.uniform(0.5, 1.8);
  if (focus > 0.3) cv::GaussianBlur(rgb, rgb, cv::Size(), focus);
  if (rgb.size() != out_size) cv::resize(rgb, rgb, out_size, 0, 0, cv::INTER_AREA);
  cv::Mat noise(out_size, CV_32FC3);
  cv::RNG(rng.next()).fill(noise, cv::RNG::NORMAL, 0.0, rng.uniform(1.0, 4.0));
  rgb += noise;
  cv::Mat out;
  rgb.convertTo(out, CV_8UC3);
  return out;
}

cv::Mat shrink_mask(const cv::Mat& mask, cv::Size size) {
  if (mask.size() == size) return mask;
  cv::Mat small;
  cv::resize(mask, small, size, 0, 0, cv::INTER_AREA);
  cv::threshold(small, small, 127, 255, cv::THRESH_BINARY);
  return small;
}

// What every drawing checks first; check_synthetic_drawing() is its public face.
void check_variant(const std::string& variant) {
  if (variant != "default" && variant != "nuclear")
    throw OptionError("variant", "the variant", "synth: ",
                      fmt::format(" must be \"default\" or \"nuclear\" (was \"{}\")", variant));
}

void check_size(int width, int height) {
  if (width < kMinSide || height < kMinSide || width > kMaxSide || height > kMaxSide)
    throw OptionError("size", "the image size", "synth: ",
                      fmt::format(" must be between {}x{} and {}x{} (was {}x{}); give WIDTHxHEIGHT such as 2048x1536",
                                  kMinSide, kMinSide, kMaxSide, kMaxSide, width, height));
}

}  // namespace

const std::vector<std::string>& bach_classes() {
  static const std::vector<std::string> classes{"Normal", "Benign", "InSitu", "Invasive"};
  return classes;
}

void check_bach_class_index(int class_index) {
  if (class_index < 0 || class_index >= static_cast<int>(bach_classes().size()))
    throw Error(fmt::format("synth: class index must be 0..3 (Normal, Benign, InSitu, Invasive) (was {})", class_index));
}

void check_synthetic_drawing(int width, int height, const std::string& variant) {
  check_size(width, height);
  check_variant(variant);
}

SynthTissue draw_synthetic_tissue(int class_index, int width, int height, uint64_t seed, const std::string& variant) {
  check_bach_class_index(class_index);
  check_synthetic_drawing(width, height, variant);
  const bool nuclear = variant == "nuclear";
  // The class joins the seed so that one seed never gives four classes on the same stroma.
  Rng rng(seed ^ (0xc2b2ae3d27d4eb4fULL * static_cast<uint64_t>(class_index + 1)));
  Canvas canvas(draw_size(width, height), rng);
  if (nuclear) {
    // Never below BACH's magnification at scale 0.5: a smaller image shows less tissue
    // rather than nuclei too small for any patch to see.
    canvas.u = std::max(canvas.u, kNuclearMinMagnification * canvas.size.width / width);
    canvas.field = static_cast<double>(canvas.size.area()) / (canvas.u * canvas.u * kReferenceArea);
  }
  draw_stroma(canvas);
  draw_stromal_cells(canvas);
  draw_fat(canvas);
  switch (class_index) {
    case 0: draw_normal(canvas); break;
    case 1: nuclear ? draw_glandular_lesion(canvas, false) : draw_benign(canvas); break;
    case 2: nuclear ? draw_glandular_lesion(canvas, true) : draw_in_situ(canvas); break;
    default: draw_invasive(canvas); break;
  }
  draw_section_edges(canvas);
  const cv::Size size(width, height);
  SynthTissue tissue;
  tissue.image = nuclear ? stain(canvas, size, StainRanges{0.16, 0.5, 1.9, 0.4, 1.8}) : stain(canvas, size);
  tissue.nuclei = shrink_mask(canvas.nuclei, size);
  tissue.lumen = shrink_mask(canvas.lumen, size);
  return tissue;
}

cv::Mat draw_synthetic_image(int class_index, int width, int height, uint64_t seed, const std::string& variant) {
  return draw_synthetic_tissue(class_index, width, height, seed, variant).image;
}

double synthetic_pixel_microns(int width, int height, const std::string& variant) {
  double magnification = std::sqrt(static_cast<double>(width) * height / kReferenceArea);
  if (variant == "nuclear") magnification = std::max(magnification, kNuclearMinMagnification);
  return kReferencePixelMicrons / magnification;
}

}  // namespace bachlab::host
