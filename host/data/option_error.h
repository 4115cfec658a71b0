#pragma once
// An error about one option a data-layer call was given (SynthOptions::per_class,
// ExploreOptions::out, ...). The data layer is called from configs, tests and the command
// line alike, so it names the option in its own words ("per_class", "the output folder");
// the command line, where the same option is a flag, says the same message with the flag
// in its place (cli::naming_flags in host/cli/commands.h), so a user reads the name they typed.

#include <bachlab/sdk/error.h>

#include <string>
#include <utility>

namespace bachlab::host {

class OptionError : public Error {
 public:
  /// The message is `before` + `name` + `after`: `option` is the options struct's member
  /// ("per_class", "out"; "size" for width and height), `name` how the message says it.
  OptionError(std::string option, const std::string& name, std::string before, std::string after)
      : Error(before + name + after), option_(std::move(option)), before_(std::move(before)), after_(std::move(after)) {}

  const std::string& option() const { return option_; }

  /// The same message with `name` (e.g. a flag, "--per-class") where the option is named.
  std::string naming(const std::string& name) const { return before_ + name + after_; }

 private:
  std::string option_;
  std::string before_;
  std::string after_;
};

}  // namespace bachlab::host
