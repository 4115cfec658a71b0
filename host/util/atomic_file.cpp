#include "host/util/atomic_file.h"

#include "host/util/process.h"

#include <bachlab/sdk/error.h>

#include <fcntl.h>
#include <unistd.h>

#include <opencv2/imgcodecs.hpp>
#include <torch/serialize/output-archive.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace bachlab::host {

namespace fs = std::filesystem;

namespace {

// The pid separates processes, the counter separates threads and calls of one process.
fs::path temp_name(const fs::path& file) {
  static std::atomic<uint64_t> counter{0};
  fs::path temp = file;
  temp += "." + std::to_string(getpid()) + "." + std::to_string(counter++) + ".tmp";
  return temp;
}

// Writes everything, retrying short writes and EINTR; false with errno set on failure.
bool write_all(int fd, const std::string& content) {
  const char* data = content.data();
  size_t left = content.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, data, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    left -= static_cast<size_t>(n);
  }
  return true;
}

// Makes the rename itself durable; a folder that cannot be synced (some network file
// systems) still holds a complete file, so failure here is not an error.
void sync_folder(const fs::path& folder) {
  const int fd = ::open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void write_file_atomic(const fs::path& file, const std::string& content) {
  const fs::path temp = temp_name(file);
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    throw Error(file.string() + ": cannot write (" + std::strerror(errno) +
                "); check that the folder exists and is writable");
  const bool written = write_all(fd, content) && ::fsync(fd) == 0;
  const int write_errno = errno;
  const bool closed = ::close(fd) == 0;
  std::error_code ec;
  if (!written || !closed) {
    const std::string why = std::strerror(written ? errno : write_errno);
    fs::remove(temp, ec);
    throw Error(file.string() + ": writing failed (" + why + "); check free disk space");
  }
  fs::rename(temp, file, ec);
  if (ec) {
    const std::string why = ec.message();
    fs::remove(temp, ec);
    throw Error(file.string() + ": cannot replace with the new version (" + why +
                "); check that the folder is writable");
  }
  sync_folder(file.parent_path());
}

void write_archive_atomic(const fs::path& file, torch::serialize::OutputArchive& archive) {
  std::ostringstream bytes;
  archive.save_to(bytes);
  write_file_atomic(file, bytes.str());
}

void write_png_atomic(const fs::path& file, const cv::Mat& image) {
  std::vector<uchar> buffer;
  if (!cv::imencode(".png", image, buffer)) throw Error(file.string() + ": OpenCV could not encode the PNG");
  write_file_atomic(file, std::string(buffer.begin(), buffer.end()));
}

namespace {

// The writer's pid in a temporary file's name, or 0 if the name is not one of ours.
long temp_file_pid(const std::string& name) {
  // "<name>.<pid>.<n>.tmp"
  if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0) {
    const std::string stem = name.substr(0, name.size() - 4);
    const auto counter_dot = stem.rfind('.');
    const auto pid_dot = counter_dot == std::string::npos ? std::string::npos : stem.rfind('.', counter_dot - 1);
    if (pid_dot != std::string::npos) {
      const std::string pid = stem.substr(pid_dot + 1, counter_dot - pid_dot - 1);
      const std::string counter = stem.substr(counter_dot + 1);
      if (!pid.empty() && !counter.empty() && pid.find_first_not_of("0123456789") == std::string::npos &&
          counter.find_first_not_of("0123456789") == std::string::npos)
        return std::stol(pid);
    }
  }
  // "<name>.tmp-<pid>-<n>"
  const auto tmp = name.rfind(".tmp-");
  if (tmp != std::string::npos) {
    const std::string rest = name.substr(tmp + 5);
    const auto dash = rest.find('-');
    if (dash != std::string::npos && dash > 0 && rest.find_first_not_of("0123456789-") == std::string::npos)
      return std::stol(rest.substr(0, dash));
  }
  return 0;
}

}  // namespace

int remove_orphaned_temp_files(const fs::path& folder) {
  int removed = 0;
  std::error_code ec;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    const long pid = temp_file_pid(it->path().filename().string());
    if (pid <= 0 || process_runs(pid) || !it->is_regular_file(ec)) continue;
    std::error_code remove_error;
    if (fs::remove(it->path(), remove_error)) ++removed;
  }
  return removed;
}

std::string read_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(file.string() + ": cannot read (" + std::strerror(errno) + ")");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace bachlab::host
