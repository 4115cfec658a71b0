// Bayesian optimisation as KerasTuner's BayesianOptimization does it: a few random
// trials first, then a Gaussian process over the trials so far (Matern 5/2 kernel with
// one length scale per encoded column, a signal variance and a noise term, all fitted by
// maximising the marginal likelihood from a few starting points), and the next trial is
// the assignment that maximises an acquisition (expected improvement or an upper
// confidence bound) over the mixed int/choice/float space, found by random sampling and
// then local search from the best samples. Choices are one-hot encoded. Never proposes
// an assignment the study already has.
//
// The linear algebra is written out here (Cholesky, triangular solves): at a hundred
// trials the matrices are 100x100, where a hand loop is faster than dispatching to
// LibTorch op by op, and the plugin then needs nothing beyond the SDK.
//
// Trials still running are given the worst score seen so far ("constant liar"), so that
// parallel workers asking one after the other are steered away from each other's points
// instead of all proposing the same optimum. Failed trials get the same value: the region
// that made a trial fail (a learning rate that diverges) is a region to avoid.
#include <bachlab/sdk/tuner.h>
#include <bachlab/sdk/tuning.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

using bachlab::sdk::Assignment;
using bachlab::sdk::Proposal;
using bachlab::sdk::TrialRecord;
namespace tuning = bachlab::sdk;

constexpr double kSqrt5 = 2.23606797749979;
constexpr double kLog2Pi = 1.8378770664093453;
// Fitting the kernel is O(n^3) per step; beyond this many trials the hyper-parameters are
// fitted on the most recent ones only (the posterior still uses every trial).
constexpr size_t kMaxFitPoints = 150;

struct BayesianOptions {
  /// Random trials before the first model. Default: 3 per tuned dimension (KerasTuner's).
  int64_t initial_points = 0;
  /// "ei" (expected improvement) or "ucb" (upper confidence bound). Default: "ei".
  std::string acquisition = "ei";
  /// UCB: weight of the standard deviation. Default: 2.6 (KerasTuner's).
  double beta = 2.6;
  /// EI: improvement (in standard deviations of the scores) that counts. Default: 0.01.
  double xi = 0.01;
  /// Starting points of the marginal-likelihood fit. Default: 3.
  int64_t restarts = 3;
  /// Random assignments scored per proposal before the local search. Default: 1000.
  int64_t candidates = 1000;
};

/// Row-major dense square matrix.
struct Matrix {
  size_t n = 0;
  std::vector<double> a;
  explicit Matrix(size_t size = 0) : n(size), a(size * size, 0.0) {}
  double& operator()(size_t i, size_t j) { return a[i * n + j]; }
  double operator()(size_t i, size_t j) const { return a[i * n + j]; }
};

// In-place Cholesky (lower triangle); false if the matrix is not positive definite.
bool cholesky(Matrix& m) {
  for (size_t j = 0; j < m.n; ++j) {
    double d = m(j, j);
    for (size_t k = 0; k < j; ++k) d -= m(j, k) * m(j, k);
    if (!(d > 0)) return false;
    d = std::sqrt(d);
    m(j, j) = d;
    for (size_t i = j + 1; i < m.n; ++i) {
      double s = m(i, j);
      const double* ri = &m.a[i * m.n];
      const double* rj = &m.a[j * m.n];
      for (size_t k = 0; k < j; ++k) s -= ri[k] * rj[k];
      m(i, j) = s / d;
    }
  }
  return true;
}

// Solves L x = b in place.
void solve_lower(const Matrix& l, std::vector<double>& b) {
  for (size_t i = 0; i < l.n; ++i) {
    double s = b[i];
    const double* ri = &l.a[i * l.n];
    for (size_t k = 0; k < i; ++k) s -= ri[k] * b[k];
    b[i] = s / ri[i];
  }
}

// Solves L^T x = b in place.
void solve_upper(const Matrix& l, std::vector<double>& b) {
  for (size_t i = l.n; i-- > 0;) {
    double s = b[i];
    for (size_t k = i + 1; k < l.n; ++k) s -= l(k, i) * b[k];
    b[i] = s / l(i, i);
  }
}

/// The kernel's hyper-parameters, all as logarithms so the fit is unconstrained in scale.
struct Hyper {
  std::vector<double> log_length;  // one per column
  double log_signal = 0;           // log of the signal variance
  double log_noise = -4;           // log of the noise variance
};

struct HyperBounds {
  static constexpr double length_lo = -4.0, length_hi = 3.0;  // e^-4 .. e^3 of the unit cube
  static constexpr double signal_lo = -3.0, signal_hi = 3.0;
  static constexpr double noise_lo = -12.0, noise_hi = 0.0;
};

/// A Gaussian process on (X, y) with fixed hyper-parameters.
class Gp {
 public:
  Gp(const std::vector<std::vector<double>>& x, const std::vector<double>& y, Hyper h)
      : x_(x), hyper_(std::move(h)), chol_(x.size()) {
    inv_length2_.resize(hyper_.log_length.size());
    for (size_t d = 0; d < inv_length2_.size(); ++d) inv_length2_[d] = std::exp(-2 * hyper_.log_length[d]);
    signal_ = std::exp(hyper_.log_signal);
    const double noise = std::exp(hyper_.log_noise);
    const size_t n = x.size();
    for (size_t i = 0; i < n; ++i) {
      chol_(i, i) = signal_ + noise + 1e-10;
      for (size_t j = 0; j < i; ++j) chol_(i, j) = chol_(j, i) = kernel(x[i], x[j]);
    }
    ok_ = cholesky(chol_);
    if (!ok_) return;
    alpha_ = y;
    solve_lower(chol_, alpha_);
    solve_upper(chol_, alpha_);
  }

  bool ok() const { return ok_; }

  /// Posterior mean and standard deviation of the latent function at `x`.
  void predict(const std::vector<double>& x, double& mean, double& sd) const {
    std::vector<double> k(x_.size());
    mean = 0;
    for (size_t i = 0; i < x_.size(); ++i) {
      k[i] = kernel(x, x_[i]);
      mean += k[i] * alpha_[i];
    }
    solve_lower(chol_, k);
    double var = signal_;
    for (double v : k) var -= v * v;
    sd = std::sqrt(std::max(var, 1e-12));
  }

 private:
  double kernel(const std::vector<double>& a, const std::vector<double>& b) const {
    double r2 = 0;
    for (size_t d = 0; d < a.size(); ++d) {
      const double delta = a[d] - b[d];
      r2 += delta * delta * inv_length2_[d];
    }
    const double r = std::sqrt(r2);
    return signal_ * (1 + kSqrt5 * r + 5.0 / 3.0 * r2) * std::exp(-kSqrt5 * r);
  }

  const std::vector<std::vector<double>>& x_;
  Hyper hyper_;
  std::vector<double> inv_length2_;
  double signal_ = 1;
  Matrix chol_;
  std::vector<double> alpha_;
  bool ok_ = false;
};

/// Log marginal likelihood of (X, y) under `h` and its gradient with respect to every
/// log hyper-parameter (length scales, then signal, then noise). -inf if K is singular.
class Likelihood {
 public:
  Likelihood(const std::vector<std::vector<double>>& x, const std::vector<double>& y) : y_(y), n_(x.size()) {
    dims_ = x.empty() ? 0 : x[0].size();
    // Squared differences per pair and column, computed once for every step of the fit.
    delta2_.reserve(n_ * (n_ - 1) / 2 * dims_);
    for (size_t i = 0; i < n_; ++i)
      for (size_t j = 0; j < i; ++j)
        for (size_t d = 0; d < dims_; ++d) {
          const double delta = x[i][d] - x[j][d];
          delta2_.push_back(delta * delta);
        }
  }

  double operator()(const Hyper& h, std::vector<double>& gradient) const {
    const double signal = std::exp(h.log_signal), noise = std::exp(h.log_noise);
    std::vector<double> inv_length2(dims_);
    for (size_t d = 0; d < dims_; ++d) inv_length2[d] = std::exp(-2 * h.log_length[d]);

    Matrix k(n_);
    std::vector<double> dk_dr_term(n_ * (n_ - 1) / 2);  // (5/3) s (1 + sqrt5 r) e^(-sqrt5 r)
    size_t pair = 0;
    for (size_t i = 0; i < n_; ++i) {
      k(i, i) = signal + noise + 1e-10;
      for (size_t j = 0; j < i; ++j, ++pair) {
        const double* d2 = &delta2_[pair * dims_];
        double r2 = 0;
        for (size_t d = 0; d < dims_; ++d) r2 += d2[d] * inv_length2[d];
        const double r = std::sqrt(r2);
        const double e = std::exp(-kSqrt5 * r);
        k(i, j) = k(j, i) = signal * (1 + kSqrt5 * r + 5.0 / 3.0 * r2) * e;
        dk_dr_term[pair] = 5.0 / 3.0 * signal * (1 + kSqrt5 * r) * e;
      }
    }
    Matrix kf = k;  // kernel values before the factorisation overwrites them
    if (!cholesky(k)) return -std::numeric_limits<double>::infinity();

    std::vector<double> alpha = y_;
    solve_lower(k, alpha);
    double quad = 0;
    for (double v : alpha) quad += v * v;
    solve_upper(k, alpha);
    double log_det = 0;
    for (size_t i = 0; i < n_; ++i) log_det += std::log(k(i, i));
    const double value = -0.5 * quad - log_det - 0.5 * static_cast<double>(n_) * kLog2Pi;

    // K^-1 from the factor: invert L column by column, then K^-1 = L^-T L^-1. Column c of
    // L^-1 is stored as row c of `inv_lt`, so both loops below walk memory in order.
    Matrix inv_lt(n_);
    for (size_t c = 0; c < n_; ++c) {
      double* e = &inv_lt.a[c * n_];
      e[c] = 1 / k(c, c);
      for (size_t i = c + 1; i < n_; ++i) {
        const double* ri = &k.a[i * n_];
        double s = 0;
        for (size_t m = c; m < i; ++m) s -= ri[m] * e[m];
        e[i] = s / ri[i];
      }
    }
    // W = alpha alpha^T - K^-1; only what the gradient needs is formed.
    gradient.assign(dims_ + 2, 0.0);
    double trace_w_kf = 0, trace_w = 0;
    pair = 0;
    for (size_t i = 0; i < n_; ++i) {
      for (size_t j = 0; j <= i; ++j) {
        double kinv = 0;
        const double* ci = &inv_lt.a[i * n_];
        const double* cj = &inv_lt.a[j * n_];
        for (size_t m = i; m < n_; ++m) kinv += ci[m] * cj[m];
        const double w = alpha[i] * alpha[j] - kinv;
        if (i == j) {
          trace_w += w;
          trace_w_kf += w * signal;
          continue;
        }
        // Off-diagonal pairs count twice (W and dK are symmetric).
        trace_w_kf += 2 * w * kf(i, j);
        const double* d2 = &delta2_[pair * dims_];
        const double common_term = 2 * w * dk_dr_term[pair];
        for (size_t d = 0; d < dims_; ++d) gradient[d] += common_term * d2[d] * inv_length2[d];
        ++pair;
      }
    }
    for (size_t d = 0; d < dims_; ++d) gradient[d] *= 0.5;
    gradient[dims_] = 0.5 * trace_w_kf;
    gradient[dims_ + 1] = 0.5 * trace_w * noise;
    return value;
  }

 private:
  std::vector<double> y_;
  size_t n_;
  size_t dims_ = 0;
  std::vector<double> delta2_;
};

std::vector<double> pack(const Hyper& h) {
  std::vector<double> v = h.log_length;
  v.push_back(h.log_signal);
  v.push_back(h.log_noise);
  return v;
}

Hyper unpack(const std::vector<double>& v) {
  Hyper h;
  h.log_length.assign(v.begin(), v.end() - 2);
  h.log_signal = v[v.size() - 2];
  h.log_noise = v.back();
  return h;
}

void clamp_to_bounds(std::vector<double>& v) {
  const size_t dims = v.size() - 2;
  for (size_t d = 0; d < dims; ++d) v[d] = std::clamp(v[d], HyperBounds::length_lo, HyperBounds::length_hi);
  v[dims] = std::clamp(v[dims], HyperBounds::signal_lo, HyperBounds::signal_hi);
  v[dims + 1] = std::clamp(v[dims + 1], HyperBounds::noise_lo, HyperBounds::noise_hi);
}

// iRprop-: sign-based steps that adapt per parameter; robust on the marginal likelihood's
// badly scaled surface and needs no line search, so a fixed, small number of steps does.
Hyper fit_hyper(const Likelihood& likelihood, size_t dims, int64_t restarts, tuning::Rng& rng, double& best_value) {
  // Starting points are drawn before any thread starts, so the result does not depend on
  // how the restarts are scheduled.
  std::vector<Hyper> starts;
  for (int64_t restart = 0; restart < restarts; ++restart) {
    Hyper start;
    start.log_length.assign(dims, std::log(0.5));
    start.log_signal = 0;
    start.log_noise = -4;
    if (restart > 0) {
      for (auto& l : start.log_length) l = -2.5 + 3.5 * rng.uniform();
      start.log_signal = -1 + 2 * rng.uniform();
      start.log_noise = -10 + 8 * rng.uniform();
    }
    starts.push_back(std::move(start));
  }
  std::vector<std::pair<double, std::vector<double>>> results(starts.size());
  auto climb = [&](size_t r) {
    constexpr int kSteps = 30;
    double best = -std::numeric_limits<double>::infinity();
    std::vector<double> best_theta;
    std::vector<double> theta = pack(starts[r]), gradient, previous(theta.size(), 0.0), step(theta.size(), 0.2);
    for (int s = 0; s < kSteps; ++s) {
      const double value = likelihood(unpack(theta), gradient);
      if (!std::isfinite(value)) {
        // Singular kernel: more noise always restores positive definiteness.
        theta.back() = std::min(theta.back() + 1, HyperBounds::noise_hi);
        continue;
      }
      if (value > best) {
        best = value;
        best_theta = theta;
      }
      for (size_t j = 0; j < theta.size(); ++j) {
        const double sign_change = gradient[j] * previous[j];
        if (sign_change > 0) {
          step[j] = std::min(step[j] * 1.2, 1.0);
        } else if (sign_change < 0) {
          step[j] = std::max(step[j] * 0.5, 1e-4);
          gradient[j] = 0;
        }
        if (gradient[j] > 0) theta[j] += step[j];
        if (gradient[j] < 0) theta[j] -= step[j];
      }
      clamp_to_bounds(theta);
      previous = gradient;
    }
    results[r] = {best, std::move(best_theta)};
  };
  // Restarts are independent: two of them at a time use both cores of a small machine.
  std::vector<std::thread> threads;
  for (size_t r = 1; r < starts.size(); r += 2) threads.emplace_back(climb, r);
  for (size_t r = 0; r < starts.size(); r += 2) climb(r);
  for (auto& t : threads) t.join();

  best_value = -std::numeric_limits<double>::infinity();
  std::vector<double> best;
  for (auto& [value, theta] : results)
    if (!theta.empty() && value > best_value) best_value = value, best = theta;
  if (best.empty()) {
    Hyper fallback;
    fallback.log_length.assign(dims, std::log(0.5));
    fallback.log_noise = HyperBounds::noise_hi;
    return fallback;
  }
  return unpack(best);
}

double normal_pdf(double z) { return 0.3989422804014327 * std::exp(-0.5 * z * z); }
double normal_cdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

class BayesianTuner : public bachlab::sdk::Tuner {
 public:
  BayesianTuner(bachlab::sdk::SearchSpace space, bachlab::sdk::StudySettings settings, BayesianOptions options)
      : space_(std::move(space)), settings_(settings), options_(std::move(options)), encoder_(space_) {}

  Proposal ask(const std::vector<TrialRecord>& history) override {
    Proposal proposal;
    if (static_cast<int64_t>(history.size()) >= settings_.max_trials) return proposal;
    const auto seen = tuning::seen_keys(history);
    if (static_cast<double>(seen.size()) >= tuning::space_size(space_)) return proposal;
    tuning::Rng rng(settings_.seed, history.size());

    std::vector<const TrialRecord*> complete;
    for (const auto& t : history)
      if (t.state == TrialRecord::State::Complete && std::isfinite(t.score)) complete.push_back(&t);

    std::optional<Assignment> chosen;
    if (static_cast<int64_t>(history.size()) >= options_.initial_points && complete.size() >= 2)
      chosen = model_based(history, complete, seen, rng);
    if (!chosen) chosen = random_unseen(seen, rng);
    if (!chosen) return proposal;
    proposal.kind = Proposal::Kind::Run;
    proposal.params = std::move(*chosen);
    proposal.epochs = settings_.epochs;
    return proposal;
  }

 private:
  std::optional<Assignment> random_unseen(const std::set<std::string>& seen, tuning::Rng& rng) const {
    for (int draw = 0; draw < 1000; ++draw) {
      auto a = tuning::sample_assignment(space_, rng);
      if (!seen.count(tuning::assignment_key(a))) return a;
    }
    return std::nullopt;
  }

  std::optional<Assignment> model_based(const std::vector<TrialRecord>& history,
                                        const std::vector<const TrialRecord*>& complete,
                                        const std::set<std::string>& seen, tuning::Rng& rng) const {
    // Scores standardised, so the kernel's bounds and EI's xi mean the same on every objective.
    double mean = 0, worst = std::numeric_limits<double>::infinity();
    for (const auto* t : complete) {
      mean += t->score;
      worst = std::min(worst, t->score);
    }
    mean /= static_cast<double>(complete.size());
    double var = 0;
    for (const auto* t : complete) var += (t->score - mean) * (t->score - mean);
    double sd = std::sqrt(var / static_cast<double>(complete.size()));
    if (!(sd > 0)) sd = 1;

    std::vector<std::vector<double>> x;
    std::vector<double> y;
    double best = -std::numeric_limits<double>::infinity();
    for (const auto& t : history) {
      const bool done = t.state == TrialRecord::State::Complete && std::isfinite(t.score);
      const double value = ((done ? t.score : worst) - mean) / sd;
      x.push_back(encoder_.encode(t.params));
      y.push_back(value);
      if (done) best = std::max(best, value);
    }

    const size_t fit_from = x.size() > kMaxFitPoints ? x.size() - kMaxFitPoints : 0;
    std::vector<std::vector<double>> fit_x(x.begin() + static_cast<std::ptrdiff_t>(fit_from), x.end());
    std::vector<double> fit_y(y.begin() + static_cast<std::ptrdiff_t>(fit_from), y.end());
    double likelihood_value = 0;
    Hyper hyper = fit_hyper(Likelihood(fit_x, fit_y), encoder_.width(), options_.restarts, rng, likelihood_value);
    Gp gp(x, y, hyper);
    if (!gp.ok()) return std::nullopt;

    auto acquisition = [&](const Assignment& a) {
      double m = 0, s = 0;
      gp.predict(encoder_.encode(a), m, s);
      if (options_.acquisition == "ucb") return m + options_.beta * s;
      const double improvement = m - best - options_.xi;
      const double z = improvement / s;
      return improvement * normal_cdf(z) + s * normal_pdf(z);
    };

    struct Scored {
      double value;
      Assignment a;
    };
    std::vector<Scored> pool;
    std::set<std::string> pooled;
    for (int64_t c = 0; c < options_.candidates; ++c) {
      auto a = tuning::sample_assignment(space_, rng);
      auto key = tuning::assignment_key(a);
      if (seen.count(key) || !pooled.insert(key).second) continue;
      pool.push_back({acquisition(a), std::move(a)});
    }
    if (pool.empty()) return std::nullopt;
    const size_t starts = std::min<size_t>(5, pool.size());
    std::partial_sort(pool.begin(), pool.begin() + static_cast<std::ptrdiff_t>(starts), pool.end(),
                      [](const Scored& a, const Scored& b) { return a.value > b.value; });

    // Hill climbing from the best samples; float moves shrink as the climb goes on.
    Scored overall = pool.front();
    for (size_t s = 0; s < starts; ++s) {
      Scored current = pool[s];
      double scale = 0.1;
      for (int round = 0; round < 12; ++round) {
        bool moved = false;
        for (auto& n : tuning::neighbours(space_, current.a, scale, rng)) {
          if (seen.count(tuning::assignment_key(n))) continue;
          const double value = acquisition(n);
          if (value > current.value) {
            current = {value, std::move(n)};
            moved = true;
          }
        }
        if (!moved) scale *= 0.5;
        if (scale < 1e-3) break;
      }
      if (current.value > overall.value) overall = std::move(current);
    }
    return overall.a;
  }

  bachlab::sdk::SearchSpace space_;
  bachlab::sdk::StudySettings settings_;
  BayesianOptions options_;
  tuning::Encoder encoder_;
};

class BayesianPlugin : public bachlab::sdk::TunerPlugin {
 public:
  std::shared_ptr<bachlab::sdk::Tuner> create(const bachlab::sdk::SearchSpace& space,
                                              const bachlab::sdk::StudySettings& settings,
                                              bachlab::sdk::Params& params) const override {
    int64_t tuned = 0;
    for (const auto& d : space.dimensions)
      if (d.type != bachlab::sdk::Dimension::Type::Fixed) ++tuned;
    BayesianOptions o;
    o.initial_points = params.get_int("initial_points", std::max<int64_t>(2, 3 * tuned), {{1}, {}});
    params.describe("initial_points", "", "3 per tuned dimension, at least 2");
    o.acquisition = params.get_string("acquisition", o.acquisition, {"ei", "ucb"});
    o.beta = params.get_float("beta", o.beta, {0.0, 100.0});
    o.xi = params.get_float("xi", o.xi, {0.0, 10.0});
    o.restarts = params.get_int("restarts", o.restarts, {1, 50});
    o.candidates = params.get_int("candidates", o.candidates, {1, 1000000});
    params.check();
    return std::make_shared<BayesianTuner>(space, settings, std::move(o));
  }
};

}  // namespace

BACHLAB_PLUGIN(tuner, "bayesian", "1.0.0",
               "Gaussian-process Bayesian optimisation (Matern 5/2, fitted length scales, EI or UCB)", BayesianPlugin)
