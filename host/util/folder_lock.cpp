#include "host/util/folder_lock.h"

#include <bachlab/sdk/error.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

namespace bachlab::host {

namespace fs = std::filesystem;

class FolderLock {
 public:
  explicit FolderLock(const fs::path& folder) {
    const fs::path file = folder / ".lock";
    fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw Error(file.string() + ": cannot open the folder's lock file: " + std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int error = errno;
      const std::string holder = read_holder();
      ::close(fd_);
      if (error != EWOULDBLOCK)
        throw Error(file.string() + ": cannot lock the folder: " + std::strerror(error));
      throw Error(folder.string() + ": " + (holder.empty() ? "another process" : "process " + holder) +
                  " is writing this folder (a run, a resume or an eval); wait for it to end, or stop it" +
                  (holder.empty() ? "" : " (kill " + holder + ")") + ", then try again");
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    // The pid only names the holder in another process's message; the lock is the flock
    // itself, so a pid that could not be written costs nothing but that name.
    if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, pid.data(), pid.size(), 0);
  }
  ~FolderLock() { ::close(fd_); }
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;

 private:
  std::string read_holder() const {
    char text[32] = {};
    const ssize_t n = ::pread(fd_, text, sizeof text - 1, 0);
    std::string pid(text, n > 0 ? static_cast<size_t>(n) : 0);
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    return pid.find_first_not_of("0123456789") == std::string::npos ? pid : "";
  }
  int fd_ = -1;
};

std::shared_ptr<FolderLock> hold_folder(const fs::path& folder) {
  static std::mutex mutex;
  static std::map<fs::path, std::weak_ptr<FolderLock>> held;
  std::error_code error;
  fs::path key = fs::weakly_canonical(folder, error);
  if (error) key = fs::absolute(folder).lexically_normal();
  std::lock_guard<std::mutex> guard(mutex);
  if (auto lock = held[key].lock()) return lock;
  auto lock = std::make_shared<FolderLock>(key);
  held[key] = lock;
  return lock;
}

}  // namespace bachlab::host
