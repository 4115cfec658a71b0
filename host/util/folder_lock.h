#pragma once
// One writer per folder: a process that writes a run folder holds an advisory lock
// (flock) on <folder>/.lock for as long as it writes, so a second `run --resume`, an
// `eval` or a leftover rank of a killed launcher cannot write into it at the same time.
// The kernel drops the lock when the holder exits, however it ends (kill -9 included), so
// a stale lock never blocks a resume. The same lock on a file of its own (FileLock) lets
// one process make something that others wait for (a synthetic dataset).

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

namespace bachlab::host {

/// An exclusive advisory lock (flock) on one file, created if missing, which holds the
/// holder's pid (for other processes' messages). Each FileLock opens the file itself, and
/// flock locks belong to an open file, so two FileLocks exclude each other within one
/// process (two threads) as in two. The lock is released when the FileLock is destroyed,
/// or when its process ends, however it ends.
class FileLock {
 public:
  /// Opens `file`; throws Error naming it if it cannot. Does not lock yet.
  explicit FileLock(const std::filesystem::path& file);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

  /// Takes the lock if nobody holds it, writing this process's pid into the file; false if
  /// it is held. Throws Error for any other failure.
  bool try_lock();
  /// Takes the lock, waiting while it is held, for at most `limit`; false if it is still
  /// held then. `on_wait`, if given, is called once, before the first wait, with holder().
  bool lock_within(std::chrono::milliseconds limit,
                   const std::function<void(const std::string& holder)>& on_wait = {});
  /// The pid the holder wrote into the file, or "" if it is not known.
  std::string holder() const;

 private:
  std::filesystem::path file_;
  int fd_ = -1;
};

class FolderLock;

/// Locks `folder` for this process, or throws Error naming the folder and the process
/// (pid) that holds it. Within one process, holding a folder again shares the one lock
/// (a cross-validation holds its folder while each fold's training holds it too); the lock
/// is released when the last holder is destroyed.
std::shared_ptr<FolderLock> hold_folder(const std::filesystem::path& folder);

}  // namespace bachlab::host
