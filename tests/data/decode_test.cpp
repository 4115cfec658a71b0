// Every TIFF flavour decodes to the right pixels; PNG and JPEG through OpenCV; every bad
// file gives its own message naming the file.
#include "host/data/image_tensor.h"
#include "tests/data/fixtures.h"

#include <bachlab/sdk/error.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace bachlab::host {
namespace {

namespace fs = std::filesystem;
using test::pattern;
using test::TempDir;
using test::TiffSpec;
using test::write_tiff;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Largest difference between the decoded image and pattern() mapped through `expect`.
int max_difference(const cv::Mat& rgb, const std::function<cv::Vec3b(int, int)>& expect) {
  int worst = 0;
  for (int y = 0; y < rgb.rows; ++y)
    for (int x = 0; x < rgb.cols; ++x) {
      cv::Vec3b want = expect(x, y), got = rgb.at<cv::Vec3b>(y, x);
      for (int c = 0; c < 3; ++c) worst = std::max(worst, std::abs(int(want[c]) - int(got[c])));
    }
  return worst;
}

cv::Vec3b rgb_pattern(int x, int y) { return {pattern(x, y, 0), pattern(x, y, 1), pattern(x, y, 2)}; }
cv::Vec3b gray_pattern(int x, int y) { return {pattern(x, y, 0), pattern(x, y, 0), pattern(x, y, 0)}; }

struct Flavour {
  const char* name;
  TiffSpec spec;
  std::function<cv::Vec3b(int, int)> expect;
  int tolerance;
};

TiffSpec spec_with(std::function<void(TiffSpec&)> change) {
  TiffSpec spec;
  change(spec);
  return spec;
}

class TiffFlavourTest : public ::testing::TestWithParam<Flavour> {};

TEST_P(TiffFlavourTest, DecodesToTheWrittenPixels) {
  const Flavour& flavour = GetParam();
  if (!TIFFIsCODECConfigured(flavour.spec.compression)) GTEST_SKIP() << "libtiff lacks this codec";
  TempDir dir;
  const fs::path file = dir / "image.tif";
  write_tiff(file, flavour.spec);
  cv::Mat rgb;
  ImageInfo info = decode_image_rgb(file, rgb);
  ASSERT_EQ(rgb.type(), CV_8UC3);
  ASSERT_EQ(rgb.cols, flavour.spec.width);
  ASSERT_EQ(rgb.rows, flavour.spec.height);
  EXPECT_EQ(info.width, flavour.spec.width);
  EXPECT_EQ(info.format, ImageFormat::tiff);
  EXPECT_LE(max_difference(rgb, flavour.expect), flavour.tolerance) << flavour.name;
}

INSTANTIATE_TEST_SUITE_P(
    Flavours, TiffFlavourTest,
    ::testing::Values(
        Flavour{"rgb_strips_none", TiffSpec{}, rgb_pattern, 0},
        Flavour{"rgb_strips_lzw", spec_with([](TiffSpec& s) { s.compression = COMPRESSION_LZW; }), rgb_pattern, 0},
        Flavour{"rgb_strips_deflate", spec_with([](TiffSpec& s) { s.compression = COMPRESSION_ADOBE_DEFLATE; }),
                rgb_pattern, 0},
        Flavour{"rgb_strips_packbits", spec_with([](TiffSpec& s) { s.compression = COMPRESSION_PACKBITS; }),
                rgb_pattern, 0},
        Flavour{"rgb_big_endian", spec_with([](TiffSpec& s) { s.big_endian = true; }), rgb_pattern, 0},
        Flavour{"rgb_tiles_none", spec_with([](TiffSpec& s) { s.tile = 16; }), rgb_pattern, 0},
        Flavour{"rgb_tiles_lzw", spec_with([](TiffSpec& s) { s.tile = 16, s.compression = COMPRESSION_LZW; }),
                rgb_pattern, 0},
        Flavour{"rgb_planar_separate",
                spec_with([](TiffSpec& s) { s.planar = PLANARCONFIG_SEPARATE, s.compression = COMPRESSION_LZW; }),
                rgb_pattern, 0},
        Flavour{"rgb_tiles_planar_separate",
                spec_with([](TiffSpec& s) { s.planar = PLANARCONFIG_SEPARATE, s.tile = 16; }), rgb_pattern, 0},
        Flavour{"rgba_deflate_alpha_dropped",
                spec_with([](TiffSpec& s) { s.samples = 4, s.compression = COMPRESSION_ADOBE_DEFLATE; }), rgb_pattern,
                0},
        Flavour{"gray8", spec_with([](TiffSpec& s) { s.samples = 1, s.photometric = PHOTOMETRIC_MINISBLACK; }),
                gray_pattern, 0},
        Flavour{"gray8_min_is_white",
                spec_with([](TiffSpec& s) { s.samples = 1, s.photometric = PHOTOMETRIC_MINISWHITE; }),
                [](int x, int y) {
                  uint8_t v = uint8_t(255 - pattern(x, y, 0));
                  return cv::Vec3b{v, v, v};
                },
                0},
        Flavour{"gray_alpha8",
                spec_with([](TiffSpec& s) { s.samples = 2, s.photometric = PHOTOMETRIC_MINISBLACK; }), gray_pattern, 0},
        Flavour{"gray16_lzw",
                spec_with([](TiffSpec& s) {
                  s.samples = 1, s.bits = 16, s.photometric = PHOTOMETRIC_MINISBLACK, s.compression = COMPRESSION_LZW;
                }),
                gray_pattern, 0},
        Flavour{"rgb16", spec_with([](TiffSpec& s) { s.bits = 16; }), rgb_pattern, 0},
        Flavour{"rgb16_big_endian_tiles", spec_with([](TiffSpec& s) { s.bits = 16, s.big_endian = true, s.tile = 16; }),
                rgb_pattern, 0},
        Flavour{"palette8",
                spec_with([](TiffSpec& s) { s.samples = 1, s.photometric = PHOTOMETRIC_PALETTE; }),
                [](int x, int y) {
                  uint8_t i = pattern(x, y, 0);
                  return cv::Vec3b{i, uint8_t(255 - i), uint8_t(i / 2)};
                },
                0},
        Flavour{"palette8_tiles",
                spec_with([](TiffSpec& s) { s.samples = 1, s.photometric = PHOTOMETRIC_PALETTE, s.tile = 16; }),
                [](int x, int y) {
                  uint8_t i = pattern(x, y, 0);
                  return cv::Vec3b{i, uint8_t(255 - i), uint8_t(i / 2)};
                },
                0}),
    [](const ::testing::TestParamInfo<Flavour>& info) { return std::string(info.param.name); });

// JPEG is lossy and subsamples colour, so pixels are compared on smooth content with a
// bound on the mean error; a wrong colour conversion (YCbCr read as RGB) is far above it.
TEST(DecodeTest, JpegTiffsInRgbAndYCbCrAreCloseOnSmoothContent) {
  if (!TIFFIsCODECConfigured(COMPRESSION_JPEG)) GTEST_SKIP() << "libtiff lacks JPEG";
  TempDir dir;
  cv::Mat smooth(48, 64, CV_8UC3);
  for (int y = 0; y < smooth.rows; ++y)
    for (int x = 0; x < smooth.cols; ++x) smooth.at<cv::Vec3b>(y, x) = {uint8_t(x * 3), uint8_t(y * 4), 128};
  for (uint16_t photometric : {uint16_t(PHOTOMETRIC_RGB), uint16_t(PHOTOMETRIC_YCBCR)}) {
    const fs::path file = dir / ("smooth" + std::to_string(photometric) + ".tif");
    test::write_rgb_tiff(file, smooth, COMPRESSION_JPEG, photometric);
    cv::Mat rgb;
    ImageInfo info = decode_image_rgb(file, rgb);
    EXPECT_EQ(info.compression, "JPEG");
    cv::Mat diff;
    cv::absdiff(rgb, smooth, diff);
    cv::Scalar mean = cv::mean(diff);
    EXPECT_LT(mean[0] + mean[1] + mean[2], 6.0) << "photometric " << photometric;
  }
}

TEST(DecodeTest, ReportsModeAndCompression) {
  TempDir dir;
  write_tiff(dir / "a.tif", spec_with([](TiffSpec& s) { s.samples = 4, s.compression = COMPRESSION_LZW; }));
  cv::Mat rgb;
  ImageInfo info = decode_image_rgb(dir / "a.tif", rgb);
  EXPECT_EQ(info.mode, "RGBA 8-bit");
  EXPECT_EQ(info.compression, "LZW");
  write_tiff(dir / "g.tif", spec_with([](TiffSpec& s) {
               s.samples = 1, s.bits = 16, s.photometric = PHOTOMETRIC_MINISBLACK;
             }));
  info = decode_image_rgb(dir / "g.tif", rgb);
  EXPECT_EQ(info.mode, "gray 16-bit");
  EXPECT_EQ(info.compression, "none");
}

TEST(DecodeTest, ReusesTheCallersBuffer) {
  TempDir dir;
  write_tiff(dir / "a.tif", TiffSpec{});
  write_tiff(dir / "b.tif", TiffSpec{});
  cv::Mat rgb;
  decode_image_rgb(dir / "a.tif", rgb);
  const uint8_t* buffer = rgb.data;
  decode_image_rgb(dir / "b.tif", rgb);
  EXPECT_EQ(rgb.data, buffer);
}

TEST(DecodeTest, PngAndJpegGoThroughOpenCvInRgbOrder) {
  TempDir dir;
  cv::Mat rgb(30, 40, CV_8UC3);
  for (int y = 0; y < 30; ++y)
    for (int x = 0; x < 40; ++x) rgb.at<cv::Vec3b>(y, x) = {pattern(x, y, 0), pattern(x, y, 1), pattern(x, y, 2)};
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  ASSERT_TRUE(cv::imwrite((dir / "a.png").string(), bgr));
  EXPECT_EQ(max_difference(load_image_rgb(dir / "a.png"), rgb_pattern), 0);

  cv::Mat bgra;
  cv::cvtColor(rgb, bgra, cv::COLOR_RGB2BGRA);
  ASSERT_TRUE(cv::imwrite((dir / "alpha.PNG").string(), bgra));
  EXPECT_EQ(max_difference(load_image_rgb(dir / "alpha.PNG"), rgb_pattern), 0);

  cv::Mat gray16(30, 40, CV_16UC1);
  for (int y = 0; y < 30; ++y)
    for (int x = 0; x < 40; ++x) gray16.at<uint16_t>(y, x) = uint16_t(pattern(x, y, 0) * 257);
  ASSERT_TRUE(cv::imwrite((dir / "gray16.png").string(), gray16));
  cv::Mat decoded;
  ImageInfo info = decode_image_rgb(dir / "gray16.png", decoded);
  EXPECT_EQ(info.mode, "gray 16-bit");
  EXPECT_EQ(max_difference(decoded, gray_pattern), 0);

  cv::Mat flat(30, 40, CV_8UC3, cv::Scalar(30, 90, 200));  // BGR
  ASSERT_TRUE(cv::imwrite((dir / "flat.jpeg").string(), flat, {cv::IMWRITE_JPEG_QUALITY, 100}));
  cv::Mat jpeg = load_image_rgb(dir / "flat.jpeg");
  EXPECT_LE(max_difference(jpeg, [](int, int) { return cv::Vec3b{200, 90, 30}; }), 2);
}

TEST(DecodeTest, PreprocessMatchesAreaResizeInChannelFirstOrder) {
  TempDir dir;
  write_tiff(dir / "a.tif", spec_with([](TiffSpec& s) { s.width = 64, s.height = 48; }));
  torch::Tensor t = preprocess_image(dir / "a.tif", 16);
  ASSERT_EQ(t.sizes(), (std::vector<int64_t>{3, 16, 16}));
  ASSERT_EQ(t.scalar_type(), torch::kUInt8);
  cv::Mat expected;
  cv::resize(load_image_rgb(dir / "a.tif"), expected, cv::Size(16, 16), 0, 0, cv::INTER_AREA);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 16; ++y)
      for (int x = 0; x < 16; ++x) ASSERT_EQ(t[c][y][x].item<uint8_t>(), expected.at<cv::Vec3b>(y, x)[c]);
}

TEST(DecodeTest, LibtiffAndOpenCvPathsAgree) {
  TempDir dir;
  write_tiff(dir / "a.tif", spec_with([](TiffSpec& s) { s.compression = COMPRESSION_LZW; }));
  cv::Mat ours, theirs;
  decode_image_rgb(dir / "a.tif", ours);
  decode_image_rgb_opencv(dir / "a.tif", theirs);
  EXPECT_EQ(cv::norm(ours, theirs, cv::NORM_INF), 0.0);
}

// ---- bad input: each gives its own message naming the file ----

TEST(DecodeErrorTest, EmptyFile) {
  TempDir dir;
  const fs::path file = dir / "empty.tif";
  test::write_bytes(file, "");
  EXPECT_EQ(error_of([&] { load_image_rgb(file); }),
            file.string() + ": the file is empty (0 bytes); copy it again from the original dataset or remove it");
}

TEST(DecodeErrorTest, MissingFile) {
  TempDir dir;
  const fs::path file = dir / "gone.png";
  EXPECT_EQ(error_of([&] { load_image_rgb(file); }),
            file.string() + ": cannot open the file (No such file or directory); check that it exists and is readable");
}

TEST(DecodeErrorTest, ContentIsNotTheExtension) {
  TempDir dir;
  cv::Mat image(8, 8, CV_8UC3, cv::Scalar(1, 2, 3));
  ASSERT_TRUE(cv::imwrite((dir / "real.png").string(), image));
  const fs::path file = dir / "photo.tif";
  fs::copy_file(dir / "real.png", file);
  EXPECT_EQ(error_of([&] { load_image_rgb(file); }),
            file.string() + ": the extension says TIFF but the content is PNG; rename the file to match its content "
                            "or convert it");
}

TEST(DecodeErrorTest, ContentIsNoImageAtAll) {
  TempDir dir;
  const fs::path file = dir / "photo.jpg";
  test::write_bytes(file, "<html>not found</html>");
  EXPECT_EQ(error_of([&] { load_image_rgb(file); }),
            file.string() + ": the extension says JPEG but the content is not a JPEG file (it starts with bytes 3c 68 "
                            "74 6d); copy the file again from the original dataset or remove it");
}

TEST(DecodeErrorTest, UnsupportedExtension) {
  TempDir dir;
  const fs::path file = dir / "photo.bmp";
  test::write_bytes(file, "BM....");
  EXPECT_EQ(error_of([&] { load_image_rgb(file); }),
            file.string() + ": unsupported extension \".bmp\"; bachlab reads .tif, .tiff, .png, .jpg and .jpeg");
}

TEST(DecodeErrorTest, TruncatedTiff) {
  TempDir dir;
  const fs::path file = dir / "cut.tif";
  // libtiff writes the directory after the pixels, so a cut file has lost its directory.
  write_tiff(file, spec_with([](TiffSpec& s) { s.width = 64, s.height = 64; }));
  std::string bytes = test::read_bytes(file);
  test::write_bytes(file, bytes.substr(0, bytes.size() / 2));
  const std::string message = error_of([&] { load_image_rgb(file); });
  EXPECT_THAT(message, ::testing::StartsWith(file.string() + ": corrupt or truncated TIFF: "));
  EXPECT_THAT(message, ::testing::EndsWith("; copy the file again from the original dataset or remove it"));
}

TEST(DecodeErrorTest, TruncatedStripData) {
  TempDir dir;
  const fs::path file = dir / "short.tif";
  // A file cut inside its pixels: written by hand with the directory before the pixel
  // data (as many cameras and scanners do), then half the pixels dropped.
  const int w = 16, h = 16;
  std::string tiff = std::string("II*\0", 4);
  auto u16 = [](uint16_t v) { return std::string{char(v & 0xff), char(v >> 8)}; };
  auto u32 = [](uint32_t v) {
    return std::string{char(v & 0xff), char((v >> 8) & 0xff), char((v >> 16) & 0xff), char(v >> 24)};
  };
  tiff += u32(8);
  const uint16_t entries = 9;
  const uint32_t bits_offset = 8 + 2 + entries * 12 + 4;
  const uint32_t data_offset = bits_offset + 6;
  auto entry = [&](uint16_t tag, uint16_t type, uint32_t count, uint32_t value) {
    std::string value_bytes = type == 3 && count == 1 ? u16(uint16_t(value)) + u16(0) : u32(value);
    return u16(tag) + u16(type) + u32(count) + value_bytes;
  };
  tiff += u16(entries);
  tiff += entry(256, 3, 1, w);                 // width
  tiff += entry(257, 3, 1, h);                 // height
  tiff += entry(258, 3, 3, bits_offset);       // bits per sample -> 8,8,8
  tiff += entry(259, 3, 1, 1);                 // no compression
  tiff += entry(262, 3, 1, 2);                 // RGB
  tiff += entry(273, 4, 1, data_offset);       // strip offset
  tiff += entry(277, 3, 1, 3);                 // samples per pixel
  tiff += entry(278, 3, 1, h);                 // rows per strip
  tiff += entry(279, 4, 1, w * h * 3);         // strip byte count
  tiff += u32(0);
  tiff += u16(8) + u16(8) + u16(8);
  tiff += std::string(size_t(w * h * 3 / 2), '\x40');  // half the pixels
  test::write_bytes(file, tiff);
  const std::string message = error_of([&] { load_image_rgb(file); });
  EXPECT_THAT(message, ::testing::StartsWith(file.string() + ": corrupt or truncated TIFF: strip 0 (rows 0..15) "
                                                             "cannot be decoded: "));
  EXPECT_THAT(message, ::testing::EndsWith("; copy the file again from the original dataset or remove it"));
}

TEST(DecodeErrorTest, FloatSamplesAreUnsupported) {
  TempDir dir;
  const fs::path file = dir / "float.tif";
  write_tiff(file, spec_with([](TiffSpec& s) { s.bits = 32, s.sample_format = SAMPLEFORMAT_IEEEFP; }));
  EXPECT_EQ(error_of([&] { load_image_rgb(file); }),
            file.string() + ": unsupported TIFF: 32-bit floating point samples; bachlab reads unsigned 8- and 16-bit "
                            "gray, RGB and RGBA TIFFs (and anything libtiff can convert to RGBA); convert the file "
                            "to 8-bit RGB, e.g. `convert in.tif -depth 8 -type TrueColor out.tif`");
}

TEST(DecodeErrorTest, SignedSamplesAreUnsupported) {
  TempDir dir;
  const fs::path file = dir / "signed.tif";
  write_tiff(file, spec_with([](TiffSpec& s) { s.bits = 16, s.sample_format = SAMPLEFORMAT_INT; }));
  EXPECT_THAT(error_of([&] { load_image_rgb(file); }),
              ::testing::StartsWith(file.string() + ": unsupported TIFF: 16-bit signed integer samples; "));
}

TEST(DecodeErrorTest, TruncatedPng) {
  TempDir dir;
  cv::Mat noise(64, 64, CV_8UC3);
  cv::randu(noise, 0, 255);
  ASSERT_TRUE(cv::imwrite((dir / "full.png").string(), noise));
  std::string bytes = test::read_bytes(dir / "full.png");
  const fs::path file = dir / "cut.png";
  test::write_bytes(file, bytes.substr(0, bytes.size() / 2));
  EXPECT_EQ(error_of([&] { load_image_rgb(file); }),
            file.string() + ": corrupt or truncated PNG: OpenCV could not decode it; copy the file again from the "
                            "original dataset or remove it");
}

TEST(DecodeErrorTest, TruncatedJpeg) {
  TempDir dir;
  cv::Mat noise(64, 64, CV_8UC3);
  cv::randu(noise, 0, 255);
  ASSERT_TRUE(cv::imwrite((dir / "full.jpg").string(), noise));
  std::string bytes = test::read_bytes(dir / "full.jpg");
  const fs::path file = dir / "cut.jpg";
  test::write_bytes(file, bytes.substr(0, bytes.size() / 2));
  EXPECT_EQ(error_of([&] { load_image_rgb(file); }),
            file.string() + ": truncated JPEG: the end-of-image marker is missing; copy the file again from the "
                            "original dataset or remove it");
}

TEST(DecodeErrorTest, CorruptTiffHeader) {
  TempDir dir;
  const fs::path file = dir / "bad.tif";
  test::write_bytes(file, std::string("II*\0\xff\xff\xff\x7f", 8) + std::string(32, '\0'));
  const std::string message = error_of([&] { load_image_rgb(file); });
  EXPECT_THAT(message, ::testing::StartsWith(file.string() + ": corrupt or truncated TIFF: "));
  EXPECT_THAT(message, ::testing::EndsWith("; copy the file again from the original dataset or remove it"));
}

TEST(DecodeErrorTest, PreprocessRejectsAZeroSize) {
  EXPECT_EQ(error_of([] { preprocess_image("x.tif", 0); }), "preprocess_image: image_size must be >= 1 (was 0)");
}

std::string be32(uint32_t v) { return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)}; }

TEST(DecodeErrorTest, APngClaimingMorePixelsThanTheLimitIsRefusedFromItsHeader) {
  // 20000x20000 16-bit RGBA would decode to 3.2 GB; the header alone must be enough to refuse it.
  TempDir dir;
  const fs::path file = dir / "huge.png";
  test::write_bytes(file, std::string("\x89PNG\r\n\x1a\n", 8) + be32(13) + "IHDR" + be32(20000) + be32(20000) +
                              std::string("\x10\x06\0\0\0", 5) + be32(0));
  EXPECT_EQ(error_of([&] { load_image_rgb(file); }),
            file.string() + ": the PNG header says 20000x20000 pixels (400 megapixels), more than the limit of "
                            "268435456 pixels ([data] max_pixels); the photo is refused before decoding, as it would "
                            "need about 3.2 GB of memory. Shrink the photo, or raise [data] max_pixels if the machine "
                            "has the memory");
}

TEST(DecodeErrorTest, AJpegClaimingMorePixelsThanTheLimitIsRefusedFromItsHeader) {
  TempDir dir;
  const fs::path file = dir / "huge.jpg";
  // SOI, an APP0 segment to walk past, SOF0 of 30000x20000 with three components, EOI.
  const std::string app0 = std::string("\xFF\xE0\x00\x06", 4) + "JFIF";
  const std::string sof0 = std::string("\xFF\xC0\x00\x11\x08", 5) + std::string("\x4E\x20\x75\x30\x03", 5) +
                           std::string("\x01\x11\x00\x02\x11\x00\x03\x11\x00", 9);
  test::write_bytes(file, std::string("\xFF\xD8", 2) + app0 + sof0 + std::string("\xFF\xD9", 2));
  EXPECT_THAT(error_of([&] { load_image_rgb(file); }),
              ::testing::StartsWith(file.string() + ": the JPEG header says 30000x20000 pixels (600 megapixels), "
                                                    "more than the limit of 268435456 pixels ([data] max_pixels)"));
}

TEST(DecodeErrorTest, APngWithoutItsHeaderChunkIsCorrupt) {
  TempDir dir;
  const fs::path file = dir / "headless.png";
  test::write_bytes(file, std::string("\x89PNG\r\n\x1a\n", 8) + be32(0) + "IEND" + be32(0));
  EXPECT_EQ(error_of([&] { load_image_rgb(file); }),
            file.string() + ": corrupt PNG: the IHDR header chunk is missing; copy the file again from the original "
                            "dataset or remove it");
}

TEST(DecodeTest, ThePixelLimitIsOneSettingForEveryFormat) {
  TempDir dir;
  cv::Mat bgr(30, 40, CV_8UC3, cv::Scalar(30, 90, 200));
  ASSERT_TRUE(cv::imwrite((dir / "a.png").string(), bgr));
  ASSERT_TRUE(cv::imwrite((dir / "a.jpg").string(), bgr));
  TiffSpec spec;
  spec.width = 40;
  spec.height = 30;
  write_tiff(dir / "a.tif", spec);
  for (const char* name : {"a.png", "a.jpg", "a.tif"}) {
    SCOPED_TRACE(name);
    cv::Mat rgb;
    // 40x30 = 1200 pixels: exactly at the limit is allowed, one below it is not.
    EXPECT_NO_THROW(decode_image_rgb(dir / name, rgb, 1200));
    EXPECT_THAT(error_of([&] { decode_image_rgb(dir / name, rgb, 1199); }),
                ::testing::HasSubstr("header says 40x30 pixels (0.0012 megapixels), more than the limit of 1199 pixels"));
    EXPECT_THAT(error_of([&] { preprocess_image(dir / name, 8, 1199); }), ::testing::HasSubstr("limit of 1199"));
  }
}

TEST(DecodeErrorTest, ATiffWhoseTilesExceedThePixelLimitIsRefusedFromItsHeader) {
  // Seen while writing the image_decode fuzz target (tests/fuzz) and confirmed with it: a
  // 216-byte TIFF of 8x6 pixels claiming 65520x65520 tiles made the decoder allocate (and
  // zero) one 12.9 GB tile.
  const fs::path file =
      fs::path(BACHLAB_SOURCE_DIR) / "tests/fuzz/regressions/image_decode/tiff_tile_65520x65520_of_8x6_photo.tif";
  ASSERT_TRUE(fs::exists(file)) << file;
  EXPECT_THAT(error_of([&] { load_image_rgb(file); }),
              ::testing::StartsWith(file.string() + ": the TIFF header says its tiles are 65520x65520 pixels "
                                                    "(4.29e+03 megapixels, for a photo of 8x6), more than the limit of "
                                                    "268435456 pixels ([data] max_pixels)"));
  // The tile counts however small the photo: an 8x6 photo in 16x16 tiles needs 256 pixels.
  TempDir dir;
  write_tiff(dir / "a.tif", spec_with([](TiffSpec& s) { s.width = 8, s.height = 6, s.tile = 16; }));
  cv::Mat rgb;
  EXPECT_NO_THROW(decode_image_rgb(dir / "a.tif", rgb, 256));
  EXPECT_EQ(rgb.cols, 8);
  EXPECT_THAT(error_of([&] { decode_image_rgb(dir / "a.tif", rgb, 255); }),
              ::testing::HasSubstr("its tiles are 16x16 pixels (0.000256 megapixels, for a photo of 8x6), more than "
                                   "the limit of 255 pixels"));
}

TEST(DecodeErrorTest, AFolderNamedLikeAnImageIsNotAnEmptyFile) {
  TempDir dir;
  fs::create_directories(dir / "x.tif");
  EXPECT_EQ(error_of([&] { load_image_rgb(dir / "x.tif"); }),
            (dir / "x.tif").string() + ": is a folder, not an image file; name the photos inside it");
}

}  // namespace
}  // namespace bachlab::host
