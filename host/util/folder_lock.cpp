#include "host/util/folder_lock.h"

#include <bachlab/sdk/error.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

namespace bachlab::host {

namespace fs = std::filesystem;

FileLock::FileLock(const fs::path& file) : file_(file) {
  fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error(file.string() + ": cannot open the lock file: " + std::strerror(errno));
}

FileLock::~FileLock() { ::close(fd_); }

bool FileLock::try_lock() {
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) return false;
    throw Error(file_.string() + ": cannot lock it: " + std::strerror(errno));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  // The pid only names the holder in another process's message; the lock is the flock
  // itself, so a pid that could not be written costs nothing but that name.
  if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, pid.data(), pid.size(), 0);
  return true;
}

bool FileLock::lock_within(std::chrono::milliseconds limit, const std::function<void(const std::string&)>& on_wait) {
  if (try_lock()) return true;
  if (on_wait) on_wait(holder());
  // flock(2) has no timeout: poll, often enough that a waiter starts soon after the holder ends.
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (try_lock()) return true;
  }
  return false;
}

std::string FileLock::holder() const {
  char text[32] = {};
  const ssize_t n = ::pread(fd_, text, sizeof text - 1, 0);
  std::string pid(text, n > 0 ? static_cast<size_t>(n) : 0);
  while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
  return pid.find_first_not_of("0123456789") == std::string::npos ? pid : "";
}

class FolderLock {
 public:
  explicit FolderLock(const fs::path& folder) : lock_(folder / ".lock") {
    if (lock_.try_lock()) return;
    const std::string holder = lock_.holder();
    throw Error(folder.string() + ": " + (holder.empty() ? "another process" : "process " + holder) +
                " is writing this folder (a run, a resume or an eval); wait for it to end, or stop it" +
                (holder.empty() ? "" : " (kill " + holder + ")") + ", then try again");
  }

 private:
  FileLock lock_;
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
