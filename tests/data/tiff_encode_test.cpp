// The TIFF encoder: what it writes decodes to the same pixels with the tags it promises, in
// strips of about 64 KiB, whatever the image's size (odd sizes make libtiff pad before the
// directory, which the in-memory file must fill as a file system would).
#include "host/data/image_decode.h"
#include "host/data/tiff_encode.h"
#include "tests/data/fixtures.h"

#include <bachlab/sdk/error.h>

#include <gtest/gtest.h>
#include <tiffio.h>

#include <fstream>

namespace bachlab::host {
namespace {

namespace fs = std::filesystem;
using test::pattern;
using test::TempDir;

cv::Mat pattern_image(int width, int height) {
  cv::Mat rgb(height, width, CV_8UC3);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < 3; ++c) rgb.at<cv::Vec3b>(y, x)[c] = pattern(x, y, c);
  return rgb;
}

fs::path write_bytes(const fs::path& file, const std::string& bytes) {
  std::ofstream(file, std::ios::binary) << bytes;
  return file;
}

TEST(TiffEncodeTest, DecodesToTheEncodedPixels) {
  TempDir dir;
  for (const cv::Size size : {cv::Size(40, 30), cv::Size(41, 31), cv::Size(1, 1), cv::Size(3000, 45)}) {
    const cv::Mat rgb = pattern_image(size.width, size.height);
    const fs::path file = write_bytes(dir / "image.tif", encode_rgb_tiff(rgb, 0.42, "bachlab test"));
    cv::Mat decoded;
    const ImageInfo info = decode_image_rgb(file, decoded);
    EXPECT_EQ(info.format, ImageFormat::tiff) << size;
    EXPECT_EQ(info.mode, "RGB 8-bit") << size;
    EXPECT_EQ(info.compression, "none") << size;
    ASSERT_EQ(decoded.size(), size);
    EXPECT_EQ(cv::norm(decoded, rgb, cv::NORM_INF), 0) << size;
  }
}

TEST(TiffEncodeTest, WritesTheResolutionSoftwareAndStripsItPromises) {
  TempDir dir;
  // 3000 RGB pixels a row: 65536 / 9000 = 7 rows a strip, so 45 rows make 7 strips.
  const fs::path file = write_bytes(dir / "wide.tif", encode_rgb_tiff(pattern_image(3000, 45), 0.5, "bachlab test"));
  TIFF* tif = TIFFOpen(file.c_str(), "r");
  ASSERT_NE(tif, nullptr);
  uint32_t rows_per_strip = 0;
  uint16_t unit = 0, compression = 0;
  float x_resolution = 0, y_resolution = 0;
  char* software = nullptr;
  TIFFGetField(tif, TIFFTAG_ROWSPERSTRIP, &rows_per_strip);
  TIFFGetField(tif, TIFFTAG_RESOLUTIONUNIT, &unit);
  TIFFGetField(tif, TIFFTAG_XRESOLUTION, &x_resolution);
  TIFFGetField(tif, TIFFTAG_YRESOLUTION, &y_resolution);
  TIFFGetField(tif, TIFFTAG_COMPRESSION, &compression);
  ASSERT_EQ(TIFFGetField(tif, TIFFTAG_SOFTWARE, &software), 1);
  EXPECT_EQ(rows_per_strip, 7u);
  EXPECT_EQ(TIFFNumberOfStrips(tif), 7u);
  EXPECT_EQ(unit, RESUNIT_CENTIMETER);
  EXPECT_FLOAT_EQ(x_resolution, 20000.0f);  // 1e4 um per cm / 0.5 um per pixel
  EXPECT_FLOAT_EQ(y_resolution, 20000.0f);
  EXPECT_EQ(compression, COMPRESSION_NONE);
  EXPECT_STREQ(software, "bachlab test");
  TIFFClose(tif);
}

TEST(TiffEncodeTest, TheSameImageGivesTheSameBytes) {
  const cv::Mat rgb = pattern_image(41, 31);
  const std::string bytes = encode_rgb_tiff(rgb, 0.42, "bachlab test");
  EXPECT_EQ(encode_rgb_tiff(rgb.clone(), 0.42, "bachlab test"), bytes);
  // Header, then the pixels (an odd count, 41 * 31 * 3), then the directory.
  EXPECT_EQ(bytes.substr(0, 4), std::string("II*\0", 4));
  EXPECT_GT(bytes.size(), 41u * 31u * 3u + 8u);
}

TEST(TiffEncodeTest, RefusesWhatIsNotEightBitRgb) {
  for (const cv::Mat& bad : {cv::Mat(4, 5, CV_8UC1, cv::Scalar(0)), cv::Mat(4, 5, CV_16UC3, cv::Scalar(0)), cv::Mat()}) {
    try {
      encode_rgb_tiff(bad, 0.42, "bachlab test");
      ADD_FAILURE() << "expected an error for type " << bad.type();
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("TIFF encoding needs an 8-bit RGB image, CV_8UC3 (was a ", 0), 0u) << e.what();
    }
  }
  try {
    encode_rgb_tiff(cv::Mat(4, 5, CV_8UC1, cv::Scalar(0)), 0.42, "bachlab test");
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "TIFF encoding needs an 8-bit RGB image, CV_8UC3 (was a 5x4 image of type CV_8UC1)");
  }
}

}  // namespace
}  // namespace bachlab::host
