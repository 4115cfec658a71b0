#pragma once
// Processes as the kernel sees them: whether a pid still runs, so that what a killed
// process left (a temp file, a partial folder, a study's claim on a trial) can be told
// from a live one's, and this program's own file, so that it can start copies of itself
// (training ranks, tuning workers) and find what is installed beside it.

#include <filesystem>
#include <system_error>

namespace bachlab::host {

/// True if a process with this pid exists on this machine: kill(pid, 0) succeeds, or fails
/// only because the process belongs to another user (EPERM). False for pids <= 0.
bool process_runs(long pid);

/// The file this program was started from (what /proc/self/exe points to), absolute.
/// Throws Error with the system's reason if it cannot be read.
std::filesystem::path program_file();

/// As program_file(), but an empty path and `error` set instead of an exception, for
/// callers that can do without it (looking for plugins beside the program).
std::filesystem::path program_file(std::error_code& error);

}  // namespace bachlab::host
