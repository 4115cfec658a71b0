#include "host/data/tiff_encode.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <opencv2/core/check.hpp>
#include <tiffio.h>

#include <algorithm>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <utility>

namespace bachlab::host {

namespace {

// The file libtiff writes into: a growing buffer with a position, read and written as a
// file would be. libtiff seeks past the end to align the directory, so a write there
// fills the gap with zeros, as a file system does; the bytes then equal those a real file
// would get.
struct MemoryFile {
  std::string bytes;
  uint64_t position = 0;
};

MemoryFile& file_of(thandle_t handle) { return *static_cast<MemoryFile*>(handle); }

tmsize_t read_memory(thandle_t handle, void* buffer, tmsize_t size) {
  MemoryFile& file = file_of(handle);
  if (size <= 0 || file.position >= file.bytes.size()) return 0;
  const size_t n = std::min<size_t>(static_cast<size_t>(size), file.bytes.size() - file.position);
  std::memcpy(buffer, file.bytes.data() + file.position, n);
  file.position += n;
  return static_cast<tmsize_t>(n);
}

tmsize_t write_memory(thandle_t handle, void* buffer, tmsize_t size) {
  MemoryFile& file = file_of(handle);
  if (size <= 0) return 0;
  const uint64_t end = file.position + static_cast<uint64_t>(size);
  if (end > file.bytes.size()) file.bytes.resize(end, '\0');
  std::memcpy(file.bytes.data() + file.position, buffer, static_cast<size_t>(size));
  file.position = end;
  return size;
}

toff_t seek_memory(thandle_t handle, toff_t offset, int whence) {
  MemoryFile& file = file_of(handle);
  const int64_t base = whence == SEEK_CUR ? static_cast<int64_t>(file.position)
                       : whence == SEEK_END ? static_cast<int64_t>(file.bytes.size())
                                            : 0;
  // SEEK_CUR and SEEK_END may go back: libtiff passes a negative offset as its two's complement.
  const int64_t target = base + static_cast<int64_t>(offset);
  if (target < 0) return static_cast<toff_t>(-1);
  file.position = static_cast<uint64_t>(target);
  return file.position;
}

int close_memory(thandle_t) { return 0; }
toff_t size_of_memory(thandle_t handle) { return file_of(handle).bytes.size(); }
// No mapping: libtiff then reads through read_memory.
int map_memory(thandle_t, void**, toff_t*) { return 0; }
void unmap_memory(thandle_t, void*, toff_t) {}

// libtiff's first complaint about this encoding, instead of a line on stderr.
int keep_first_error(TIFF*, void* user_data, const char* module, const char* format, va_list args) {
  char text[512];
  std::vsnprintf(text, sizeof text, format, args);
  auto& message = *static_cast<std::string*>(user_data);
  if (message.empty()) message = module ? fmt::format("{}: {}", module, text) : std::string(text);
  return 1;
}

}  // namespace

std::string encode_rgb_tiff(const cv::Mat& rgb, double pixel_microns, const std::string& software) {
  if (rgb.type() != CV_8UC3 || rgb.empty())
    throw Error(fmt::format("TIFF encoding needs an 8-bit RGB image, CV_8UC3 (was a {}x{} image of type {})", rgb.cols,
                            rgb.rows, cv::typeToString(rgb.type())));
  MemoryFile file;
  std::string libtiff_error;
  TIFFOpenOptions* open_options = TIFFOpenOptionsAlloc();
  TIFFOpenOptionsSetErrorHandlerExtR(open_options, keep_first_error, &libtiff_error);
  TIFF* tif = TIFFClientOpenExt("memory", "w", &file, read_memory, write_memory, seek_memory, close_memory,
                                size_of_memory, map_memory, unmap_memory, open_options);
  TIFFOpenOptionsFree(open_options);
  auto fail = [&](const std::string& what) {
    return Error(fmt::format("cannot encode a {}x{} image as TIFF ({}: {})", rgb.cols, rgb.rows, what,
                             libtiff_error.empty() ? "libtiff gave no reason" : libtiff_error));
  };
  if (!tif) throw fail("open");
  const uint32_t width = static_cast<uint32_t>(rgb.cols), height = static_cast<uint32_t>(rgb.rows);
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, width);
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, height);
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 3);
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8);
  TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, SAMPLEFORMAT_UINT);
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB);
  TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField(tif, TIFFTAG_ORIENTATION, ORIENTATION_TOPLEFT);
  // Uncompressed, as the real BACH photos are (about 9.4 MB at 2048x1536), so that decoding
  // benchmarks on synthetic photos measure what real ones cost.
  TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_NONE);
  // About 64 KiB of pixels per strip: small enough for readers to stream, large enough
  // that the strip table costs nothing.
  TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, std::clamp<uint32_t>(65536 / (width * 3), 1, height));
  TIFFSetField(tif, TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER);
  TIFFSetField(tif, TIFFTAG_XRESOLUTION, static_cast<float>(1e4 / pixel_microns));
  TIFFSetField(tif, TIFFTAG_YRESOLUTION, static_cast<float>(1e4 / pixel_microns));
  TIFFSetField(tif, TIFFTAG_SOFTWARE, software.c_str());
  for (uint32_t y = 0; y < height; ++y) {
    if (TIFFWriteScanline(tif, const_cast<uint8_t*>(rgb.ptr<uint8_t>(static_cast<int>(y))), y, 0) < 0) {
      TIFFClose(tif);
      throw fail(fmt::format("row {}", y));
    }
  }
  if (!TIFFWriteDirectory(tif)) {
    TIFFClose(tif);
    throw fail("directory");
  }
  TIFFClose(tif);
  return std::move(file.bytes);
}

}  // namespace bachlab::host
