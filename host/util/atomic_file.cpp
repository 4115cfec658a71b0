#include "host/util/atomic_file.h"

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

std::string read_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(file.string() + ": cannot read (" + std::strerror(errno) + ")");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace bachlab::host
