#pragma once
/// \file value.h
/// Typed parameter values as they come from TOML: bool, integer, float, string, or a
/// list of those. Used by Params (plugin settings) and by the tuner's search space.

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace bachlab::sdk {

/// A single TOML scalar.
using Scalar = std::variant<bool, int64_t, double, std::string>;

/// A scalar or a list of scalars (TOML arrays of tables are not plugin params).
using Value = std::variant<bool, int64_t, double, std::string, std::vector<Scalar>>;

/// "bool", "integer", "float", "string" or "list": the words error messages use.
const char* type_name(const Value& v);

/// A scalar as TOML would write it: true, 3, 0.001, "same" (the shortest text that reads
/// back as the same double).
std::string to_string(const Scalar& s);

/// A value as TOML would write it; lists as [a, b].
std::string to_string(const Value& v);

}  // namespace bachlab::sdk
