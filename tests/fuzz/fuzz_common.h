#pragma once
// Shared by the libFuzzer targets: a private scratch folder per fuzzing process, the one
// rule every target checks (bad input is a bachlab::Error with a message, never another
// exception), and splitting one input into parts.

#include <bachlab/sdk/error.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

namespace bachlab::fuzz {

/// A folder of this process's own under the temporary folder, made on first use and
/// removed at exit (libFuzzer's -fork/-jobs workers each get their own). libFuzzer often
/// leaves by _Exit (after a crash, a timeout, and at the end of a replay), which skips that,
/// so the folders of processes that are gone are removed here first: one is left at most.
inline const std::filesystem::path& scratch_dir(const char* target) {
  static const std::filesystem::path dir = [target] {
    const std::string prefix = "bachlab-fuzz-" + std::string(target) + "-";
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::temp_directory_path(), ec)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind(prefix, 0) != 0) continue;
      const std::string digits = name.substr(prefix.size());
      if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
      if (::kill(pid_t(std::stol(digits)), 0) != 0 && errno == ESRCH) std::filesystem::remove_all(entry.path(), ec);
    }
    auto path = std::filesystem::temp_directory_path() / (prefix + std::to_string(::getpid()));
    std::filesystem::create_directories(path);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(nullptr), ec);
    });
    return path;
  }();
  return dir;
}

inline void write_file(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "fuzz harness: cannot write %s\n", path.c_str());
    std::abort();
  }
}

/// Splits `input` at lines that hold only `separator` (the newline before and after the
/// separator belong to it): "a\n%%\nb" is {"a", "b"}.
inline std::vector<std::string> split_parts(const std::string& input, const std::string& separator) {
  std::vector<std::string> parts;
  const std::string mark = "\n" + separator + "\n";
  size_t start = 0;
  for (size_t at; (at = input.find(mark, start)) != std::string::npos; start = at + mark.size())
    parts.push_back(input.substr(start, at - start));
  parts.push_back(input.substr(start));
  return parts;
}

/// Runs `body`; a bachlab::Error is the expected answer to bad input and must say
/// something. Any other exception means bad input got past the checks: it aborts, which
/// libFuzzer reports as a crash with the input.
template <typename Body>
void expect_only_bachlab_errors(const char* what, Body&& body) {
  try {
    body();
  } catch (const Error& e) {
    if (std::string(e.what()).empty()) {
      std::fprintf(stderr, "%s: a bachlab::Error with an empty message\n", what);
      std::abort();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: an exception other than bachlab::Error escaped: %s\n", what, e.what());
    std::abort();
  }
}

/// Aborts with `message` when `condition` is false: a broken promise of the code under test.
inline void require(bool condition, const std::string& message) {
  if (condition) return;
  std::fprintf(stderr, "fuzz check failed: %s\n", message.c_str());
  std::abort();
}

}  // namespace bachlab::fuzz
