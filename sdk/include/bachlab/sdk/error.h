#pragma once
/// \file error.h
/// The one exception type a plugin may throw across the SDK's C++ calls. The host shows
/// what() as is, so the message must say where, the rule, the value found and the fix.

#include <stdexcept>
#include <string>

namespace bachlab {

/// An error meant for the user: its message is complete and is printed unchanged.
/// Default visibility so that the host catches it by type when a plugin (built with
/// hidden visibility) throws it.
class __attribute__((visibility("default"))) Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace bachlab
