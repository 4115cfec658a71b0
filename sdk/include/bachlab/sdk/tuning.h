#pragma once
/// \file tuning.h
/// Building blocks for tuner plugins: sampling of a search space with the portable
/// generator of random.h, the encoding of an assignment as a point of [0,1]^d for models
/// of the objective, and the neighbours of an assignment for local search. Compiled into
/// libbachlab_sdk.so.

#include <bachlab/sdk/error.h>
#include <bachlab/sdk/random.h>
#include <bachlab/sdk/search_space.h>
#include <bachlab/sdk/tuner.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace bachlab::sdk {

/// A float dimension's value; an integer (a float range with integral bounds written as
/// `1` in TOML) is accepted.
double as_double(const Scalar& s);

/// Number of values an integer dimension takes: min, min+step, ... <= max.
int64_t int_count(const Dimension& d);

/// One value of `d`, uniform over its values (log-uniform for a log float).
Scalar sample_value(const Dimension& d, Rng& rng);

/// A full assignment: dimensions in order, each inactive one left out.
Assignment sample_assignment(const SearchSpace& space, Rng& rng);

/// Drops values of dimensions that are inactive given their parents (after a local
/// search changed a parent) and fills newly active ones, so an assignment is always valid.
void make_consistent(const SearchSpace& space, Assignment& a, Rng& rng);

/// A canonical key of an assignment, for "was this proposed before?". Raw bytes rather
/// than sdk::to_string: tuners build thousands of keys per proposal, and the shortest
/// round-trip text of a double costs microseconds each.
std::string assignment_key(const Assignment& a);

/// Keys of every assignment in the history (running, complete and failed alike: a
/// duplicate of a failed trial would fail again).
std::set<std::string> seen_keys(const std::vector<TrialRecord>& history);

/// Number of distinct assignments of the space, saturating at `cap` (a float dimension
/// counts as unbounded); lets a tuner say Done once every assignment was tried.
double space_size(const SearchSpace& space, double cap = 1e12);

/// The unit-cube encoding a Gaussian process works in: one column per int, float and bool
/// dimension (scaled to [0,1], in log space for log floats), one column per value of a
/// choice (one-hot), none for a fixed one. Inactive dimensions encode as all zeros.
class Encoder {
 public:
  explicit Encoder(const SearchSpace& space);

  /// Number of columns.
  size_t width() const { return width_; }

  /// The point of [0,1]^width() for `a`.
  std::vector<double> encode(const Assignment& a) const;

 private:
  const SearchSpace* space_;
  std::vector<size_t> offsets_;
  size_t width_ = 0;
};

/// Assignments one step away from `a`, for local search: each int one step up and down,
/// each float moved by a normal step of `scale` of its range (in log space for log
/// floats), every other value of each choice, each bool flipped. Conditional children are
/// filled or dropped to keep every neighbour valid.
std::vector<Assignment> neighbours(const SearchSpace& space, const Assignment& a, double scale, Rng& rng);

}  // namespace bachlab::sdk
