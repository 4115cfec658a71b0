#pragma once
/// \file tuning.h
/// Building blocks for tuner plugins: a portable random generator, sampling of a search
/// space, the encoding of an assignment as a point of [0,1]^d for models of the objective,
/// and the neighbours of an assignment for local search. Header-only, so a tuner plugin
/// stays one self-contained .so.
///
/// Why a generator of our own: std::uniform_real_distribution and friends draw differently
/// in libstdc++ and libc++, and a study must propose the same trials on every machine so
/// that workers on several machines, and a resumed study, agree with each other. The host's
/// synthetic dataset uses the same generator for the same reason.

#include <bachlab/sdk/error.h>
#include <bachlab/sdk/search_space.h>
#include <bachlab/sdk/tuner.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace bachlab::sdk {

/// One step of splitmix64: advances `state` and returns 64 well-mixed bits. Seeds Rng, and
/// turns a seed and a counter into independent seeds.
inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/// xoshiro256** seeded through splitmix64: small, fast, identical everywhere.
class Rng {
 public:
  /// One stream per seed: the state is four successive splitmix64 outputs from `seed`.
  explicit Rng(uint64_t seed) {
    for (auto& word : state_) word = splitmix64(seed);
  }

  /// A stream for (seed, stream): tuners use the number of trials asked so far as the
  /// stream, so the proposal for trial k depends only on the seed and the history.
  Rng(uint64_t seed, uint64_t stream) : Rng(seed ^ (0x9E3779B97F4A7C15ULL * (stream + 1))) {}

  /// The next 64 random bits.
  uint64_t next() {
    const uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  /// Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  /// Uniform in 0..n-1 (n >= 1), without modulo bias.
  uint64_t below(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x = next();
    while (x >= limit) x = next();
    return x % n;
  }

  /// Standard normal (Box-Muller; one value per call keeps the stream simple).
  double normal() {
    double u = uniform();
    while (u <= 0) u = uniform();
    return std::sqrt(-2.0 * std::log(u)) * std::cos(6.283185307179586 * uniform());
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t state_[4];
};

/// A float dimension's value; an integer (a float range with integral bounds written as
/// `1` in TOML) is accepted.
inline double as_double(const Scalar& s) {
  if (const auto* f = std::get_if<double>(&s)) return *f;
  if (const auto* i = std::get_if<int64_t>(&s)) return static_cast<double>(*i);
  return 0;
}

/// Number of values an integer dimension takes: min, min+step, ... <= max.
inline int64_t int_count(const Dimension& d) { return (d.int_max - d.int_min) / d.int_step + 1; }

/// One value of `d`, uniform over its values (log-uniform for a log float).
inline Scalar sample_value(const Dimension& d, Rng& rng) {
  switch (d.type) {
    case Dimension::Type::Int:
      return d.int_min + static_cast<int64_t>(rng.below(static_cast<uint64_t>(int_count(d)))) * d.int_step;
    case Dimension::Type::Float: {
      const double u = rng.uniform();
      if (d.log) return std::exp(std::log(d.float_min) + u * (std::log(d.float_max) - std::log(d.float_min)));
      return d.float_min + u * (d.float_max - d.float_min);
    }
    case Dimension::Type::Choice:
      return d.choices[rng.below(d.choices.size())];
    case Dimension::Type::Bool:
      return rng.below(2) == 1;
    case Dimension::Type::Fixed:
      break;
  }
  return d.fixed;
}

/// A full assignment: dimensions in order, each inactive one left out.
inline Assignment sample_assignment(const SearchSpace& space, Rng& rng) {
  Assignment out;
  for (const auto& d : space.dimensions)
    if (SearchSpace::active(d, out)) out[d.name] = sample_value(d, rng);
  return out;
}

/// Drops values of dimensions that are inactive given their parents (after a local
/// search changed a parent) and fills newly active ones, so an assignment is always valid.
inline void make_consistent(const SearchSpace& space, Assignment& a, Rng& rng) {
  Assignment out;
  for (const auto& d : space.dimensions) {
    if (!SearchSpace::active(d, out)) continue;
    auto it = a.find(d.name);
    out[d.name] = it != a.end() ? it->second : sample_value(d, rng);
  }
  a = std::move(out);
}

/// A canonical key of an assignment, for "was this proposed before?". Raw bytes rather
/// than sdk::to_string: tuners build thousands of keys per proposal, and the shortest
/// round-trip text of a double costs microseconds each.
inline std::string assignment_key(const Assignment& a) {
  std::string key;
  for (const auto& [name, value] : a) {
    key += name;
    key += static_cast<char>('0' + value.index());
    if (const auto* s = std::get_if<std::string>(&value)) {
      key += *s;
    } else if (const auto* d = std::get_if<double>(&value)) {
      key.append(reinterpret_cast<const char*>(d), sizeof(double));
    } else if (const auto* i = std::get_if<int64_t>(&value)) {
      key.append(reinterpret_cast<const char*>(i), sizeof(int64_t));
    } else {
      key += std::get<bool>(value) ? '1' : '0';
    }
    key += '\0';
  }
  return key;
}

/// Keys of every assignment in the history (running, complete and failed alike: a
/// duplicate of a failed trial would fail again).
inline std::set<std::string> seen_keys(const std::vector<TrialRecord>& history) {
  std::set<std::string> keys;
  for (const auto& t : history) keys.insert(assignment_key(t.params));
  return keys;
}

/// Number of distinct assignments of the space, saturating at `cap` (a float dimension
/// counts as unbounded); lets a tuner say Done once every assignment was tried.
inline double space_size(const SearchSpace& space, double cap = 1e12) {
  // Conditional dimensions make the exact count a sum over branches; the product over
  // all dimensions is an upper bound, and only "is the space exhausted" depends on it.
  double size = 1;
  for (const auto& d : space.dimensions) {
    switch (d.type) {
      case Dimension::Type::Int: size *= static_cast<double>(int_count(d)); break;
      case Dimension::Type::Float: return cap;
      case Dimension::Type::Choice: size *= static_cast<double>(d.choices.size()); break;
      case Dimension::Type::Bool: size *= 2; break;
      case Dimension::Type::Fixed: break;
    }
    if (size >= cap) return cap;
  }
  return size;
}

/// The unit-cube encoding a Gaussian process works in: one column per int, float and bool
/// dimension (scaled to [0,1], in log space for log floats), one column per value of a
/// choice (one-hot), none for a fixed one. Inactive dimensions encode as all zeros.
class Encoder {
 public:
  explicit Encoder(const SearchSpace& space) : space_(&space) {
    for (const auto& d : space.dimensions) {
      offsets_.push_back(width_);
      width_ += columns(d);
    }
  }

  /// Number of columns.
  size_t width() const { return width_; }

  /// The point of [0,1]^width() for `a`.
  std::vector<double> encode(const Assignment& a) const {
    std::vector<double> x(width_, 0.0);
    for (size_t k = 0; k < space_->dimensions.size(); ++k) {
      const Dimension& d = space_->dimensions[k];
      auto it = a.find(d.name);
      if (it == a.end()) continue;
      const size_t o = offsets_[k];
      switch (d.type) {
        case Dimension::Type::Int: {
          const auto* v = std::get_if<int64_t>(&it->second);
          if (v && d.int_max > d.int_min)
            x[o] = static_cast<double>(*v - d.int_min) / static_cast<double>(d.int_max - d.int_min);
          break;
        }
        case Dimension::Type::Float:
          x[o] = unit_float(d, as_double(it->second));
          break;
        case Dimension::Type::Choice:
          for (size_t c = 0; c < d.choices.size(); ++c)
            if (d.choices[c] == it->second) x[o + c] = 1.0;
          break;
        case Dimension::Type::Bool: {
          const auto* b = std::get_if<bool>(&it->second);
          x[o] = b && *b ? 1.0 : 0.0;
          break;
        }
        case Dimension::Type::Fixed:
          break;
      }
    }
    return x;
  }

 private:
  static size_t columns(const Dimension& d) {
    switch (d.type) {
      case Dimension::Type::Int:
      case Dimension::Type::Float:
      case Dimension::Type::Bool: return 1;
      case Dimension::Type::Choice: return d.choices.size();
      case Dimension::Type::Fixed: return 0;
    }
    return 0;
  }

  static double unit_float(const Dimension& d, double v) {
    if (!(d.float_max > d.float_min)) return 0;
    if (d.log) return (std::log(v) - std::log(d.float_min)) / (std::log(d.float_max) - std::log(d.float_min));
    return (v - d.float_min) / (d.float_max - d.float_min);
  }

  const SearchSpace* space_;
  std::vector<size_t> offsets_;
  size_t width_ = 0;
};

/// Assignments one step away from `a`, for local search: each int one step up and down,
/// each float moved by a normal step of `scale` of its range (in log space for log
/// floats), every other value of each choice, each bool flipped. Conditional children are
/// filled or dropped to keep every neighbour valid.
inline std::vector<Assignment> neighbours(const SearchSpace& space, const Assignment& a, double scale, Rng& rng) {
  std::vector<Assignment> out;
  for (const auto& d : space.dimensions) {
    auto it = a.find(d.name);
    if (it == a.end()) continue;
    auto with = [&](Scalar value) {
      Assignment b = a;
      b[d.name] = std::move(value);
      make_consistent(space, b, rng);
      out.push_back(std::move(b));
    };
    switch (d.type) {
      case Dimension::Type::Int: {
        const auto* p = std::get_if<int64_t>(&it->second);
        if (!p) break;
        const int64_t v = *p;
        if (v - d.int_step >= d.int_min) with(v - d.int_step);
        if (v + d.int_step <= d.int_max) with(v + d.int_step);
        break;
      }
      case Dimension::Type::Float: {
        const double v = as_double(it->second);
        double moved;
        if (d.log) {
          const double lo = std::log(d.float_min), hi = std::log(d.float_max);
          moved = std::exp(std::clamp(std::log(v) + scale * (hi - lo) * rng.normal(), lo, hi));
        } else {
          moved = std::clamp(v + scale * (d.float_max - d.float_min) * rng.normal(), d.float_min, d.float_max);
        }
        with(std::clamp(moved, d.float_min, d.float_max));
        break;
      }
      case Dimension::Type::Choice:
        for (const auto& c : d.choices)
          if (!(c == it->second)) with(c);
        break;
      case Dimension::Type::Bool:
        if (const auto* b = std::get_if<bool>(&it->second)) with(!*b);
        break;
      case Dimension::Type::Fixed:
        break;
    }
  }
  return out;
}

}  // namespace bachlab::sdk
