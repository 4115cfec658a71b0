#pragma once
// Axis ticks shared by every figure (learning curves, exploration histograms, tuning plots).

#include <cmath>

namespace bachlab::host {

/// A "nice" tick step - 1, 2 or 5 times a power of ten - giving about `count` ticks over
/// `range` (> 0).
inline double nice_step(double range, int count) {
  const double raw = range / count;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * power) return m * power;
  return 10 * power;
}

}  // namespace bachlab::host
