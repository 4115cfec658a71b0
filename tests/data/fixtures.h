#pragma once
// Fixtures for the data tests: fresh temp folders, TIFFs written with libtiff in every
// flavour the decoder must read, and tiny BACH-layout datasets.

#include <opencv2/core.hpp>
#include <tiffio.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace bachlab::test {

/// A fresh folder under the system temp folder, removed with everything in it at the end.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

/// The test pattern: a distinct value per (x, y, channel), so any shift, swap or
/// transposition of pixels shows.
inline uint8_t pattern(int x, int y, int c) { return uint8_t((x * 7 + y * 13 + c * 85) & 0xff); }

/// How to write a TIFF fixture.
struct TiffSpec {
  int width = 40;
  int height = 30;
  int samples = 3;          // 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA
  int bits = 8;             // 8 or 16 (or 32 with sample_format float)
  uint16_t photometric = PHOTOMETRIC_RGB;
  uint16_t compression = COMPRESSION_NONE;
  uint16_t planar = PLANARCONFIG_CONTIG;
  uint16_t sample_format = SAMPLEFORMAT_UINT;
  int rows_per_strip = 7;   // uneven on purpose: the last strip is short
  int tile = 0;             // > 0: tiled with tile x tile tiles (multiple of 16)
  bool big_endian = false;
};

/// Writes `spec` with every sample s of pixel (x, y) = pattern(x, y, s) (scaled by 257 for
/// 16-bit, so that the 8-bit result is pattern(x, y, s) again). Palette images use a
/// colour map where index i maps to RGB (i, 255 - i, i / 2) (16-bit map entries * 257).
void write_tiff(const std::filesystem::path& file, const TiffSpec& spec);

/// Writes an 8-bit TIFF in strips from an RGB CV_8UC3 image (YCbCr only with JPEG).
void write_rgb_tiff(const std::filesystem::path& file, const cv::Mat& rgb,
                    uint16_t compression = COMPRESSION_NONE, uint16_t photometric = PHOTOMETRIC_RGB);

/// A solid-colour-plus-noise RGB image: each class gets its own mean colour, each image
/// its own noise, so decoded tensors can be told apart.
cv::Mat class_image(int class_index, int image_index, int width, int height);

/// Writes <root>/Photos/<Class>/<prefix><NNN>.tif for `per_class` images of each class
/// (prefixes n, b, is, iv) and the ground-truth CSV. Returns the CSV path.
std::filesystem::path make_bach_dataset(const std::filesystem::path& root, int per_class, int width = 48,
                                        int height = 36);

/// Writes the file's bytes.
void write_bytes(const std::filesystem::path& file, const std::string& bytes);

/// Reads the file's bytes.
std::string read_bytes(const std::filesystem::path& file);

}  // namespace bachlab::test
