#include "host/util/process.h"

#include <bachlab/sdk/error.h>

#include <signal.h>

#include <cerrno>

namespace bachlab::host {

bool process_runs(long pid) {
  // Without the check, kill(0, 0) and kill(-1, 0) would ask about whole process groups.
  if (pid <= 0) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

std::filesystem::path program_file(std::error_code& error) {
  // Linux keeps the link pointing at the program even when it was started through a
  // relative path or another symlink, so this is right whatever the current folder is now.
  return std::filesystem::read_symlink("/proc/self/exe", error);
}

std::filesystem::path program_file() {
  std::error_code error;
  std::filesystem::path file = program_file(error);
  if (error) throw Error("cannot find this program's own file (/proc/self/exe: " + error.message() + ")");
  return file;
}

}  // namespace bachlab::host
