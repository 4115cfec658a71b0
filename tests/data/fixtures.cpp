#include "tests/data/fixtures.h"

#include <opencv2/core.hpp>

#include <atomic>
#include <cstring>
#include <fstream>
#include <random>
#include <stdexcept>
#include <unistd.h>

namespace bachlab::test {

namespace fs = std::filesystem;

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  std::random_device random;
  path_ = fs::temp_directory_path() /
          ("bachlab-data-test-" + std::to_string(getpid()) + "-" + std::to_string(counter++) + "-" +
           std::to_string(random()));
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::permissions(path_, fs::perms::all, fs::perm_options::add, ec);
  fs::remove_all(path_, ec);
}

namespace {

// One pixel's samples as stored.
void fill_pixel(const TiffSpec& spec, int x, int y, std::vector<uint8_t>& row, size_t at, int sample) {
  const int value = pattern(x, y, sample);
  if (spec.sample_format == SAMPLEFORMAT_IEEEFP) {
    float f = float(value) / 255.f;
    std::memcpy(row.data() + at, &f, 4);
  } else if (spec.bits == 16) {
    uint16_t v = uint16_t(value * 257);
    std::memcpy(row.data() + at, &v, 2);
  } else {
    row[at] = uint8_t(value);
  }
}

}  // namespace

void write_tiff(const fs::path& file, const TiffSpec& spec) {
  TIFF* tif = TIFFOpen(file.c_str(), spec.big_endian ? "wb" : "wl");
  if (!tif) throw std::runtime_error("cannot create " + file.string());
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, uint32_t(spec.width));
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, uint32_t(spec.height));
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, uint16_t(spec.samples));
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, uint16_t(spec.bits));
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, spec.photometric);
  TIFFSetField(tif, TIFFTAG_COMPRESSION, spec.compression);
  TIFFSetField(tif, TIFFTAG_PLANARCONFIG, spec.planar);
  TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, spec.sample_format);
  if (spec.samples == 4 || spec.samples == 2) {
    uint16_t extra = EXTRASAMPLE_UNASSALPHA;
    TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, uint16_t(1), &extra);
  }
  if (spec.photometric == PHOTOMETRIC_PALETTE) {
    const size_t entries = size_t(1) << spec.bits;
    std::vector<uint16_t> r(entries), g(entries), b(entries);
    for (size_t i = 0; i < entries; ++i) {
      r[i] = uint16_t(i * 257);
      g[i] = uint16_t((255 - i) * 257);
      b[i] = uint16_t((i / 2) * 257);
    }
    TIFFSetField(tif, TIFFTAG_COLORMAP, r.data(), g.data(), b.data());
  }
  if (spec.compression == COMPRESSION_JPEG) {
    TIFFSetField(tif, TIFFTAG_JPEGQUALITY, 95);
    if (spec.photometric == PHOTOMETRIC_YCBCR) TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
  }
  const bool separate = spec.planar == PLANARCONFIG_SEPARATE;
  const int planes = separate ? spec.samples : 1;
  const int per_pixel = separate ? 1 : spec.samples;
  const size_t sample_bytes = size_t(spec.bits) / 8;

  if (spec.tile > 0) {
    TIFFSetField(tif, TIFFTAG_TILEWIDTH, uint32_t(spec.tile));
    TIFFSetField(tif, TIFFTAG_TILELENGTH, uint32_t(spec.tile));
    std::vector<uint8_t> tile(size_t(spec.tile) * spec.tile * per_pixel * sample_bytes, 0);
    for (int plane = 0; plane < planes; ++plane)
      for (int ty = 0; ty < spec.height; ty += spec.tile)
        for (int tx = 0; tx < spec.width; tx += spec.tile) {
          std::fill(tile.begin(), tile.end(), 0);
          for (int y = 0; y < spec.tile; ++y)
            for (int x = 0; x < spec.tile; ++x)
              for (int s = 0; s < per_pixel; ++s) {
                const size_t at = ((size_t(y) * spec.tile + x) * per_pixel + s) * sample_bytes;
                fill_pixel(spec, tx + x, ty + y, tile, at, separate ? plane : s);
              }
          if (TIFFWriteTile(tif, tile.data(), uint32_t(tx), uint32_t(ty), 0, uint16_t(plane)) < 0)
            throw std::runtime_error("TIFFWriteTile failed for " + file.string());
        }
  } else {
    TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, uint32_t(spec.rows_per_strip));
    std::vector<uint8_t> row(size_t(spec.width) * per_pixel * sample_bytes);
    for (int plane = 0; plane < planes; ++plane)
      for (int y = 0; y < spec.height; ++y) {
        for (int x = 0; x < spec.width; ++x)
          for (int s = 0; s < per_pixel; ++s)
            fill_pixel(spec, x, y, row, (size_t(x) * per_pixel + s) * sample_bytes, separate ? plane : s);
        if (TIFFWriteScanline(tif, row.data(), uint32_t(y), uint16_t(plane)) < 0)
          throw std::runtime_error("TIFFWriteScanline failed for " + file.string());
      }
  }
  TIFFClose(tif);
}

void write_rgb_tiff(const fs::path& file, const cv::Mat& rgb, uint16_t compression, uint16_t photometric) {
  TIFF* tif = TIFFOpen(file.c_str(), "w");
  if (!tif) throw std::runtime_error("cannot create " + file.string());
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, uint32_t(rgb.cols));
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, uint32_t(rgb.rows));
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, uint16_t(3));
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, uint16_t(8));
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, photometric);
  TIFFSetField(tif, TIFFTAG_COMPRESSION, compression);
  TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  // JPEG strips must be a multiple of 16 rows when YCbCr is subsampled.
  TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, uint32_t(16));
  if (compression == COMPRESSION_JPEG) {
    TIFFSetField(tif, TIFFTAG_JPEGQUALITY, 95);
    if (photometric == PHOTOMETRIC_YCBCR) TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
  }
  for (int y = 0; y < rgb.rows; ++y)
    if (TIFFWriteScanline(tif, const_cast<uint8_t*>(rgb.ptr<uint8_t>(y)), uint32_t(y), 0) < 0)
      throw std::runtime_error("TIFFWriteScanline failed for " + file.string());
  TIFFClose(tif);
}

cv::Mat class_image(int class_index, int image_index, int width, int height) {
  static const cv::Vec3b colours[] = {{230, 180, 200}, {200, 120, 170}, {150, 80, 160}, {120, 60, 140}};
  cv::Mat image(height, width, CV_8UC3);
  std::mt19937 rng(uint32_t(class_index * 1000 + image_index));
  std::uniform_int_distribution<int> noise(-20, 20);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < 3; ++c)
        image.at<cv::Vec3b>(y, x)[c] = cv::saturate_cast<uint8_t>(colours[class_index % 4][c] + noise(rng));
  return image;
}

fs::path make_bach_dataset(const fs::path& root, int per_class, int width, int height) {
  const char* classes[] = {"Normal", "Benign", "InSitu", "Invasive"};
  const char* prefixes[] = {"n", "b", "is", "iv"};
  const fs::path photos = root / "Photos";
  std::string csv;
  for (int c = 0; c < 4; ++c) {
    fs::create_directories(photos / classes[c]);
    for (int i = 1; i <= per_class; ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "%s%03d.tif", prefixes[c], i);
      write_rgb_tiff(photos / classes[c] / name, class_image(c, i, width, height));
      csv += std::string(name) + "," + classes[c] + "\n";
    }
  }
  write_bytes(photos / "microscopy_ground_truth.csv", csv);
  return photos / "microscopy_ground_truth.csv";
}

void write_bytes(const fs::path& file, const std::string& bytes) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << bytes;
  if (!out.flush()) throw std::runtime_error("cannot write " + file.string());
}

std::string read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace bachlab::test
