#pragma once
/// \file search_space.h
/// A hyper-parameter search space: named dimensions, each an integer range with a step,
/// a float range (optionally log-scaled), a choice, a bool or a fixed value. A dimension
/// may be conditional: active only when another dimension takes one of given values.

#include <bachlab/sdk/value.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace bachlab::sdk {

/// One named hyper-parameter.
struct Dimension {
  enum class Type { Int, Float, Choice, Bool, Fixed };
  /// Parameter name, as the model/optimizer table spells it (e.g. "model.filters").
  std::string name;
  /// What kind of values it takes.
  Type type = Type::Fixed;
  /// Int: inclusive bounds and step (values are min, min+step, ... <= max).
  int64_t int_min = 0, int_max = 0, int_step = 1;
  /// Float: inclusive bounds; `log` samples uniformly in log space (needs min > 0).
  double float_min = 0, float_max = 0;
  /// Float: sample log-uniformly.
  bool log = false;
  /// Choice: the values, all of one type.
  std::vector<Scalar> choices;
  /// Fixed: the value.
  Scalar fixed;
  /// Conditional: the dimension is active only if `parent` is set to one of `parent_values`.
  std::string parent;
  /// Conditional: the parent values that activate this dimension.
  std::vector<Scalar> parent_values;
};

/// A full set of values, one per active dimension.
using Assignment = std::map<std::string, Scalar>;

/// The dimensions, in the order the config lists them (a parent before its children).
struct SearchSpace {
  std::vector<Dimension> dimensions;

  /// True if `dimension` is active given the values already chosen in `assignment`.
  static bool active(const Dimension& dimension, const Assignment& assignment);
};

}  // namespace bachlab::sdk
