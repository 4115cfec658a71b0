#pragma once
/// \file random.h
/// The portable random generator of bachlab: xoshiro256** seeded through splitmix64, with
/// its uniform, integer and normal draws. Tuners propose trials with it and the host draws
/// the synthetic dataset with it.
///
/// Why a generator of our own: std::uniform_real_distribution and friends draw differently
/// in libstdc++ and libc++, and a study must propose the same trials on every machine so
/// that workers on several machines, and a resumed study, agree with each other; a
/// synthetic dataset must be the same bytes wherever it is drawn.
///
/// Inline, unlike the rest of the SDK, on purpose: the numbers it draws are part of
/// every study's and every synthetic dataset's reproducibility, so its code can never
/// change (a fix would be a new generator beside it), and it runs once per pixel in places.

#include <cmath>
#include <cstdint>

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

}  // namespace bachlab::sdk
