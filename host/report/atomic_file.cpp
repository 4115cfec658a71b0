#include "host/report/atomic_file.h"

#include <bachlab/sdk/error.h>

#include <opencv2/imgcodecs.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace bachlab::host {

namespace fs = std::filesystem;

void write_file_atomic(const fs::path& file, const std::string& content) {
  fs::path temp = file;
  temp += ".tmp";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out)
      throw Error(file.string() + ": cannot write (" + std::strerror(errno) +
                  "); check that the folder exists and is writable");
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.flush();
    if (!out) throw Error(file.string() + ": writing failed (" + std::strerror(errno) + "); check free disk space");
  }
  std::error_code ec;
  fs::rename(temp, file, ec);
  if (ec) throw Error(file.string() + ": cannot replace with the new version (" + ec.message() + ")");
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
