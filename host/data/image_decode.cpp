#include "host/data/image_decode.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <tiffio.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <fstream>
#include <mutex>
#include <vector>

namespace bachlab::host {

namespace fs = std::filesystem;

namespace {

std::string lower_extension(const fs::path& file) {
  std::string ext = file.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

// Messages libtiff reports while one file is being read. libtiff >= 4.5 routes most of
// them to the handle's own handler; the rest go to the process-wide handler, which
// appends to this thread's buffer, so parallel decodes never mix their messages and
// nothing is printed behind the user's back.
thread_local std::string* tiff_messages = nullptr;

void append_message(std::string& to, const char* fmt, va_list ap) {
  char buffer[1024];
  std::vsnprintf(buffer, sizeof buffer, fmt, ap);
  if (!to.empty()) to += "; ";
  to += buffer;
}

void global_tiff_error(const char*, const char* fmt, va_list ap) {
  if (tiff_messages) append_message(*tiff_messages, fmt, ap);
}

// Warnings (unknown tags, odd but readable layouts) do not make a photo unusable.
void global_tiff_warning(const char*, const char*, va_list) {}

#if TIFFLIB_VERSION >= 20221213
int handle_tiff_error(TIFF*, void* user_data, const char*, const char* fmt, va_list ap) {
  append_message(*static_cast<std::string*>(user_data), fmt, ap);
  return 1;
}
int handle_tiff_warning(TIFF*, void*, const char*, const char*, va_list) { return 1; }
#endif

void install_tiff_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    TIFFSetErrorHandler(global_tiff_error);
    TIFFSetWarningHandler(global_tiff_warning);
  });
}

// An open TIFF whose messages are collected in `messages`.
class TiffReader {
 public:
  explicit TiffReader(const fs::path& file) : file_(file) {
    install_tiff_handlers();
    tiff_messages = &messages_;
#if TIFFLIB_VERSION >= 20221213
    TIFFOpenOptions* options = TIFFOpenOptionsAlloc();
    TIFFOpenOptionsSetErrorHandlerExtR(options, handle_tiff_error, &messages_);
    TIFFOpenOptionsSetWarningHandlerExtR(options, handle_tiff_warning, nullptr);
    tif_ = TIFFOpenExt(file.c_str(), "r", options);
    TIFFOpenOptionsFree(options);
#else
    tif_ = TIFFOpen(file.c_str(), "r");
#endif
    if (!tif_) fail("corrupt or truncated TIFF");
  }
  ~TiffReader() {
    if (tif_) TIFFClose(tif_);
    tiff_messages = nullptr;
  }
  TiffReader(const TiffReader&) = delete;
  TiffReader& operator=(const TiffReader&) = delete;

  TIFF* get() const { return tif_; }

  [[noreturn]] void fail(const std::string& problem) const {
    std::string detail = messages_.empty() ? "libtiff gave no reason" : messages_;
    throw Error(fmt::format("{}: {}: {}; copy the file again from the original dataset or remove it",
                            file_.string(), problem, detail));
  }

  [[noreturn]] void unsupported(const std::string& what) const {
    throw Error(fmt::format("{}: unsupported TIFF: {}; bachlab reads unsigned 8- and 16-bit gray, RGB and RGBA "
                            "TIFFs (and anything libtiff can convert to RGBA); convert the file to 8-bit RGB, "
                            "e.g. `convert in.tif -depth 8 -type TrueColor out.tif`",
                            file_.string(), what));
  }

 private:
  fs::path file_;
  TIFF* tif_ = nullptr;
  std::string messages_;
};

std::string compression_name(uint16_t compression) {
  switch (compression) {
    case COMPRESSION_NONE: return "none";
    case COMPRESSION_LZW: return "LZW";
    case COMPRESSION_ADOBE_DEFLATE:
    case COMPRESSION_DEFLATE: return "Deflate";
    case COMPRESSION_JPEG:
    case COMPRESSION_OJPEG: return "JPEG";
    case COMPRESSION_PACKBITS: return "PackBits";
    case COMPRESSION_CCITTRLE:
    case COMPRESSION_CCITTFAX3:
    case COMPRESSION_CCITTFAX4: return "CCITT";
#ifdef COMPRESSION_ZSTD
    case COMPRESSION_ZSTD: return "ZSTD";
#endif
#ifdef COMPRESSION_WEBP
    case COMPRESSION_WEBP: return "WebP";
#endif
#ifdef COMPRESSION_LZMA
    case COMPRESSION_LZMA: return "LZMA";
#endif
    default: return fmt::format("code {}", compression);
  }
}

std::string photometric_name(uint16_t photometric, uint16_t samples) {
  switch (photometric) {
    case PHOTOMETRIC_MINISBLACK:
    case PHOTOMETRIC_MINISWHITE: return samples >= 2 ? "gray+alpha" : "gray";
    case PHOTOMETRIC_RGB: return samples >= 4 ? "RGBA" : "RGB";
    case PHOTOMETRIC_PALETTE: return "palette";
    case PHOTOMETRIC_YCBCR: return "YCbCr";
    case PHOTOMETRIC_SEPARATED: return "CMYK";
    case PHOTOMETRIC_CIELAB: return "Lab";
    default: return fmt::format("photometric {}", photometric);
  }
}

std::string sample_format_name(uint16_t sample_format) {
  switch (sample_format) {
    case SAMPLEFORMAT_INT: return "signed integer";
    case SAMPLEFORMAT_IEEEFP: return "floating point";
    case SAMPLEFORMAT_COMPLEXINT: return "complex integer";
    case SAMPLEFORMAT_COMPLEXIEEEFP: return "complex floating point";
    default: return fmt::format("sample format {}", sample_format);
  }
}

[[noreturn]] void pixel_limit_exceeded(const fs::path& file, ImageFormat format, uint64_t width, uint64_t height,
                                       uint64_t max_pixels) {
  throw Error(fmt::format("{}: the {} header says {}x{} pixels ({:.3g} megapixels), more than the limit of {} pixels "
                          "([data] max_pixels); the photo is refused before decoding, as it would need about {:.1f} "
                          "GB of memory. Shrink the photo, or raise [data] max_pixels if the machine has the memory",
                          file.string(), format_name(format), width, height, double(width) * double(height) / 1e6,
                          max_pixels, double(width) * double(height) * 8 / 1e9));
}

void check_pixel_limit(const fs::path& file, ImageFormat format, uint64_t width, uint64_t height, uint64_t max_pixels) {
  // Each side is at most 2^32, so the product cannot overflow 64 bits.
  if (width * height > max_pixels) pixel_limit_exceeded(file, format, width, height, max_pixels);
}

// 16-bit to 8-bit with rounding, so that 65535 maps to 255 and 257*k maps to k exactly.
inline uint8_t scale16(uint16_t v) { return static_cast<uint8_t>((v + 128u) / 257u); }

// The layout of one TIFF's samples, read once from its tags.
struct TiffLayout {
  uint32_t width = 0;
  uint32_t height = 0;
  uint16_t samples = 1;
  uint16_t bits = 1;
  uint16_t photometric = PHOTOMETRIC_MINISBLACK;
  uint16_t planar = PLANARCONFIG_CONTIG;
  uint16_t sample_format = SAMPLEFORMAT_UINT;
  uint16_t compression = COMPRESSION_NONE;
  bool gray() const { return photometric == PHOTOMETRIC_MINISBLACK || photometric == PHOTOMETRIC_MINISWHITE; }
};

TiffLayout read_layout(const TiffReader& reader, const fs::path& file, uint64_t max_pixels) {
  TIFF* tif = reader.get();
  TiffLayout layout;
  if (!TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &layout.width) || !TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &layout.height))
    reader.fail("corrupt TIFF: the image width or height tag is missing");
  if (layout.width == 0 || layout.height == 0)
    reader.fail(fmt::format("corrupt TIFF: the image is {}x{} pixels", layout.width, layout.height));
  check_pixel_limit(file, ImageFormat::tiff, layout.width, layout.height, max_pixels);
  // A tile is decoded whole, and a tile may be larger than the photo: its size is the other
  // number in the header that says how much a decoder allocates (a 1 KB file of 8x6 pixels
  // can claim 65520x65520 tiles, 12.9 GB each).
  if (TIFFIsTiled(tif)) {
    uint32_t tile_w = 0, tile_h = 0;
    TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tile_w);
    TIFFGetField(tif, TIFFTAG_TILELENGTH, &tile_h);
    if (tile_w == 0 || tile_h == 0) reader.fail("corrupt TIFF: the tile size is 0");
    if (uint64_t(tile_w) * tile_h > max_pixels)
      throw Error(fmt::format("{}: the TIFF header says its tiles are {}x{} pixels ({:.3g} megapixels, for a photo of "
                              "{}x{}), more than the limit of {} pixels ([data] max_pixels); the photo is refused "
                              "before decoding, as each tile would need about {:.1f} GB of memory. Rewrite it "
                              "without tiles (e.g. `tiffcp -s in.tif out.tif`) or with smaller ones",
                              file.string(), tile_w, tile_h, double(tile_w) * double(tile_h) / 1e6, layout.width,
                              layout.height, max_pixels, double(tile_w) * double(tile_h) * 8 / 1e9));
  }
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &layout.samples);
  TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &layout.bits);
  TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &layout.planar);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &layout.sample_format);
  TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &layout.compression);
  if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &layout.photometric))
    layout.photometric = layout.samples >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK;
  if (layout.sample_format == SAMPLEFORMAT_VOID) layout.sample_format = SAMPLEFORMAT_UINT;
  return layout;
}

// Converts `count` pixels of one decoded row (interleaved samples) to RGB.
void convert_row(const uint8_t* in, const TiffLayout& layout, uint32_t count, uint8_t* out) {
  const uint32_t spp = layout.samples;
  if (layout.bits == 8) {
    if (!layout.gray()) {
      if (spp == 3) {
        std::memcpy(out, in, size_t(count) * 3);
      } else {
        for (uint32_t x = 0; x < count; ++x, in += spp, out += 3) out[0] = in[0], out[1] = in[1], out[2] = in[2];
      }
    } else {
      const uint8_t flip = layout.photometric == PHOTOMETRIC_MINISWHITE ? 0xff : 0;
      for (uint32_t x = 0; x < count; ++x, in += spp, out += 3) out[0] = out[1] = out[2] = in[0] ^ flip;
    }
    return;
  }
  // libtiff hands 16-bit samples over in native byte order whatever the file's order.
  const auto* in16 = reinterpret_cast<const uint16_t*>(in);
  if (!layout.gray()) {
    for (uint32_t x = 0; x < count; ++x, in16 += spp, out += 3)
      out[0] = scale16(in16[0]), out[1] = scale16(in16[1]), out[2] = scale16(in16[2]);
  } else {
    const bool invert = layout.photometric == PHOTOMETRIC_MINISWHITE;
    for (uint32_t x = 0; x < count; ++x, in16 += spp, out += 3) {
      uint8_t v = scale16(in16[0]);
      out[0] = out[1] = out[2] = invert ? uint8_t(255 - v) : v;
    }
  }
}

// Places `count` samples of one plane (planar-separate files) into channel `channel`, or
// all three channels for a gray plane.
void convert_plane_row(const uint8_t* in, const TiffLayout& layout, uint32_t count, int channel, uint8_t* out) {
  const bool gray = layout.gray();
  const bool invert = layout.photometric == PHOTOMETRIC_MINISWHITE;
  for (uint32_t x = 0; x < count; ++x, out += 3) {
    uint8_t v = layout.bits == 8 ? in[x] : scale16(reinterpret_cast<const uint16_t*>(in)[x]);
    if (invert) v = uint8_t(255 - v);
    if (gray) {
      out[0] = out[1] = out[2] = v;
    } else {
      out[channel] = v;
    }
  }
}

// The path every BACH photo takes: samples decoded strip by strip (or tile by tile) and
// written straight into the RGB buffer, one strip of compressed data in memory at a time.
void decode_direct(const TiffReader& reader, const TiffLayout& layout, cv::Mat& rgb) {
  TIFF* tif = reader.get();
  const bool separate = layout.planar == PLANARCONFIG_SEPARATE;
  const int planes = separate ? (layout.gray() ? 1 : 3) : 1;
  const size_t bytes_per_sample = layout.bits / 8;
  const size_t pixel_bytes = separate ? bytes_per_sample : bytes_per_sample * layout.samples;

  auto place = [&](const uint8_t* in, uint32_t row, uint32_t col, uint32_t count, int plane) {
    uint8_t* out = rgb.ptr<uint8_t>(int(row)) + size_t(col) * 3;
    if (separate) {
      convert_plane_row(in, layout, count, plane, out);
    } else {
      convert_row(in, layout, count, out);
    }
  };

  if (TIFFIsTiled(tif)) {
    uint32_t tile_w = 0, tile_h = 0;
    TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tile_w);
    TIFFGetField(tif, TIFFTAG_TILELENGTH, &tile_h);  // both checked against the limit by read_layout
    std::vector<uint8_t> tile(size_t(TIFFTileSize(tif)));
    const size_t tile_row_bytes = size_t(tile_w) * pixel_bytes;
    if (tile.size() < tile_row_bytes * tile_h) reader.fail("corrupt TIFF: the tile size tags disagree");
    for (uint32_t y = 0; y < layout.height; y += tile_h) {
      for (uint32_t x = 0; x < layout.width; x += tile_w) {
        for (int plane = 0; plane < planes; ++plane) {
          if (TIFFReadTile(tif, tile.data(), x, y, 0, uint16_t(plane)) < 0)
            reader.fail(fmt::format("corrupt or truncated TIFF: tile at ({}, {}) cannot be decoded", x, y));
          const uint32_t rows = std::min(tile_h, layout.height - y);
          const uint32_t cols = std::min(tile_w, layout.width - x);
          for (uint32_t r = 0; r < rows; ++r) place(tile.data() + r * tile_row_bytes, y + r, x, cols, plane);
        }
      }
    }
    return;
  }

  uint32_t rows_per_strip = 0;
  TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rows_per_strip);
  rows_per_strip = std::clamp<uint32_t>(rows_per_strip, 1, layout.height);
  const uint32_t strips_per_plane = (layout.height + rows_per_strip - 1) / rows_per_strip;
  const size_t row_bytes = size_t(layout.width) * pixel_bytes;
  // 8-bit RGB in strips (every BACH photo) is already the output layout: libtiff decodes
  // straight into the RGB buffer, sparing a copy of the whole photo.
  if (!separate && layout.bits == 8 && layout.samples == 3 && !layout.gray() && rgb.isContinuous()) {
    for (uint32_t s = 0; s < strips_per_plane; ++s) {
      const uint32_t first_row = s * rows_per_strip;
      const uint32_t rows = std::min(rows_per_strip, layout.height - first_row);
      const tmsize_t want = tmsize_t(row_bytes * rows);
      tmsize_t got = TIFFReadEncodedStrip(tif, s, rgb.ptr<uint8_t>(int(first_row)), want);
      if (got < 0)
        reader.fail(fmt::format("corrupt or truncated TIFF: strip {} (rows {}..{}) cannot be decoded", s, first_row,
                                first_row + rows - 1));
      if (got < want)
        reader.fail(fmt::format("corrupt or truncated TIFF: strip {} holds {} bytes, {} expected", s, got, want));
    }
    return;
  }
  std::vector<uint8_t> strip(row_bytes * rows_per_strip);
  for (uint32_t s = 0; s < strips_per_plane; ++s) {
    const uint32_t first_row = s * rows_per_strip;
    const uint32_t rows = std::min(rows_per_strip, layout.height - first_row);
    for (int plane = 0; plane < planes; ++plane) {
      tstrip_t index = TIFFComputeStrip(tif, first_row, uint16_t(plane));
      tmsize_t got = TIFFReadEncodedStrip(tif, index, strip.data(), tmsize_t(row_bytes * rows));
      if (got < 0)
        reader.fail(fmt::format("corrupt or truncated TIFF: strip {} (rows {}..{}) cannot be decoded", index,
                                first_row, first_row + rows - 1));
      if (size_t(got) < row_bytes * rows)
        reader.fail(fmt::format("corrupt or truncated TIFF: strip {} holds {} bytes, {} expected", index, got,
                                row_bytes * rows));
      for (uint32_t r = 0; r < rows; ++r) place(strip.data() + r * row_bytes, first_row + r, 0, layout.width, plane);
    }
  }
}

// Palette, YCbCr, CMYK, Lab, 1/2/4-bit and other layouts: libtiff's own RGBA conversion,
// which holds one 32-bit raster of the photo.
void decode_via_rgba(const TiffReader& reader, const TiffLayout& layout, cv::Mat& rgb) {
  std::vector<uint32_t> raster(size_t(layout.width) * layout.height);
  if (!TIFFReadRGBAImageOriented(reader.get(), layout.width, layout.height, raster.data(), ORIENTATION_TOPLEFT, 0))
    reader.fail("corrupt or truncated TIFF");
  for (uint32_t y = 0; y < layout.height; ++y) {
    const uint32_t* in = raster.data() + size_t(y) * layout.width;
    uint8_t* out = rgb.ptr<uint8_t>(int(y));
    for (uint32_t x = 0; x < layout.width; ++x, out += 3) {
      out[0] = uint8_t(TIFFGetR(in[x]));
      out[1] = uint8_t(TIFFGetG(in[x]));
      out[2] = uint8_t(TIFFGetB(in[x]));
    }
  }
}

ImageInfo decode_tiff(const fs::path& file, cv::Mat& rgb, uint64_t max_pixels) {
  TiffReader reader(file);
  TiffLayout layout = read_layout(reader, file, max_pixels);
  ImageInfo info;
  info.width = int(layout.width);
  info.height = int(layout.height);
  info.format = ImageFormat::tiff;
  info.compression = compression_name(layout.compression);
  info.mode = fmt::format("{} {}-bit", photometric_name(layout.photometric, layout.samples), layout.bits);

  if (layout.sample_format != SAMPLEFORMAT_UINT)
    reader.unsupported(fmt::format("{}-bit {} samples", layout.bits, sample_format_name(layout.sample_format)));
  if (!TIFFIsCODECConfigured(layout.compression))
    reader.unsupported(fmt::format("compression {} is not built into this libtiff", info.compression));

  // JPEG-compressed YCbCr is upsampled and converted by the codec itself when asked.
  if (layout.photometric == PHOTOMETRIC_YCBCR && layout.compression == COMPRESSION_JPEG) {
    TIFFSetField(reader.get(), TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
    layout.photometric = PHOTOMETRIC_RGB;
  }
  const bool direct_bits = layout.bits == 8 || layout.bits == 16;
  const bool direct_model = (layout.photometric == PHOTOMETRIC_RGB && layout.samples >= 3) ||
                            (layout.gray() && layout.samples >= 1);
  rgb.create(info.height, info.width, CV_8UC3);
  if (direct_bits && direct_model) {
    decode_direct(reader, layout, rgb);
    return info;
  }
  char why[1024] = "";
  if (!TIFFRGBAImageOK(reader.get(), why)) reader.unsupported(fmt::format("{} ({})", info.mode, why));
  decode_via_rgba(reader, layout, rgb);
  return info;
}

std::vector<uint8_t> read_file_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in)
    throw Error(fmt::format("{}: cannot open the file ({}); check that it exists and is readable", file.string(),
                            std::strerror(errno)));
  in.seekg(0, std::ios::end);
  std::vector<uint8_t> bytes(size_t(in.tellg()));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(bytes.data()), std::streamsize(bytes.size()));
  if (!in) throw Error(fmt::format("{}: the file could not be read to its end; check the disk", file.string()));
  return bytes;
}

// libjpeg fills a truncated photo with gray and only warns; the missing end-of-image
// marker is the reliable sign. Writers may pad after it, so the tail is searched.
bool jpeg_has_end_marker(const std::vector<uint8_t>& bytes) {
  const size_t start = bytes.size() > 4096 ? bytes.size() - 4096 : 0;
  for (size_t end = bytes.size(); end >= start + 2; --end)
    if (bytes[end - 2] == 0xFF && bytes[end - 1] == 0xD9) return true;
  return false;
}

uint32_t big_endian(const uint8_t* p, int bytes) {
  uint32_t value = 0;
  for (int i = 0; i < bytes; ++i) value = value << 8 | p[i];
  return value;
}

// Width and height from a PNG's IHDR chunk, which the format requires first.
std::pair<uint32_t, uint32_t> png_dimensions(const fs::path& file, const std::vector<uint8_t>& bytes) {
  if (bytes.size() < 24 || std::memcmp(bytes.data() + 12, "IHDR", 4) != 0)
    throw Error(fmt::format("{}: corrupt PNG: the IHDR header chunk is missing; copy the file again from the original "
                            "dataset or remove it",
                            file.string()));
  return {big_endian(bytes.data() + 16, 4), big_endian(bytes.data() + 20, 4)};
}

// Width and height from a JPEG's first frame header (SOF0..SOF15 but DHT, JPG and DAC),
// walking the marker segments from the start of the file.
std::pair<uint32_t, uint32_t> jpeg_dimensions(const fs::path& file, const std::vector<uint8_t>& bytes) {
  size_t at = 2;  // after SOI
  while (at + 4 <= bytes.size()) {
    if (bytes[at] != 0xFF) break;
    const uint8_t marker = bytes[at + 1];
    if (marker == 0xFF) {  // fill byte
      ++at;
      continue;
    }
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {  // no length
      at += 2;
      continue;
    }
    if (marker == 0xD9 || marker == 0xDA) break;  // end of image, start of scan: no frame header came first
    const size_t length = big_endian(bytes.data() + at + 2, 2);
    if (length < 2) break;
    const bool frame = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (frame) {
      if (length < 7 || at + 9 > bytes.size()) break;
      return {big_endian(bytes.data() + at + 7, 2), big_endian(bytes.data() + at + 5, 2)};
    }
    at += 2 + length;
  }
  throw Error(fmt::format("{}: corrupt JPEG: no frame header (SOF) before the image data; copy the file again from "
                          "the original dataset or remove it",
                          file.string()));
}

ImageInfo decode_with_opencv(const fs::path& file, ImageFormat format, cv::Mat& rgb, uint64_t max_pixels) {
  std::vector<uint8_t> bytes = read_file_bytes(file);
  // The decoder allocates what the header claims; check it first. (TIFFs come here only
  // from the benchmark's OpenCV path, which checks their header with libtiff first.)
  if (format != ImageFormat::tiff) {
    const auto [width, height] =
        format == ImageFormat::png ? png_dimensions(file, bytes) : jpeg_dimensions(file, bytes);
    check_pixel_limit(file, format, width, height, max_pixels);
  }
  if (format == ImageFormat::jpeg && !jpeg_has_end_marker(bytes))
    throw Error(fmt::format("{}: truncated JPEG: the end-of-image marker is missing; copy the file again from the "
                            "original dataset or remove it",
                            file.string()));
  cv::Mat raw = cv::imdecode(bytes, cv::IMREAD_UNCHANGED);
  bytes = {};
  if (raw.empty())
    throw Error(fmt::format("{}: corrupt or truncated {}: OpenCV could not decode it; copy the file again from the "
                            "original dataset or remove it",
                            file.string(), format_name(format)));
  ImageInfo info;
  info.width = raw.cols;
  info.height = raw.rows;
  info.format = format;
  const int depth_bits = raw.depth() == CV_16U ? 16 : 8;
  const char* model = raw.channels() == 1 ? "gray" : raw.channels() == 4 ? "RGBA" : "RGB";
  info.mode = fmt::format("{} {}-bit", model, depth_bits);
  if (raw.depth() != CV_8U && raw.depth() != CV_16U)
    throw Error(fmt::format("{}: unsupported {} sample depth (OpenCV depth code {}); convert the file to 8-bit RGB",
                            file.string(), format_name(format), raw.depth()));
  if (raw.depth() == CV_16U) raw.convertTo(raw, CV_8U, 1.0 / 257.0);
  switch (raw.channels()) {
    case 1: cv::cvtColor(raw, rgb, cv::COLOR_GRAY2RGB); break;
    case 3: cv::cvtColor(raw, rgb, cv::COLOR_BGR2RGB); break;
    case 4: cv::cvtColor(raw, rgb, cv::COLOR_BGRA2RGB); break;
    default:
      throw Error(fmt::format("{}: unsupported {} with {} channels; convert the file to 8-bit RGB", file.string(),
                              format_name(format), raw.channels()));
  }
  return info;
}

}  // namespace

const char* format_name(ImageFormat format) {
  switch (format) {
    case ImageFormat::tiff: return "TIFF";
    case ImageFormat::png: return "PNG";
    case ImageFormat::jpeg: return "JPEG";
    default: return "unknown";
  }
}

ImageFormat format_from_extension(const fs::path& file) {
  const std::string ext = lower_extension(file);
  if (ext == ".tif" || ext == ".tiff") return ImageFormat::tiff;
  if (ext == ".png") return ImageFormat::png;
  if (ext == ".jpg" || ext == ".jpeg") return ImageFormat::jpeg;
  return ImageFormat::unknown;
}

bool has_image_extension(const fs::path& file) { return format_from_extension(file) != ImageFormat::unknown; }

ImageFormat sniff_image_format(const fs::path& file) {
  const ImageFormat promised = format_from_extension(file);
  if (promised == ImageFormat::unknown)
    throw Error(fmt::format("{}: unsupported extension \"{}\"; bachlab reads .tif, .tiff, .png, .jpg and .jpeg",
                            file.string(), file.extension().string()));
  std::error_code ec;
  if (fs::is_directory(file, ec))
    throw Error(fmt::format("{}: is a folder, not an image file; name the photos inside it", file.string()));
  std::ifstream in(file, std::ios::binary);
  if (!in)
    throw Error(fmt::format("{}: cannot open the file ({}); check that it exists and is readable", file.string(),
                            std::strerror(errno)));
  std::array<uint8_t, 8> head{};
  in.read(reinterpret_cast<char*>(head.data()), head.size());
  const size_t got = size_t(in.gcount());
  if (got == 0)
    throw Error(fmt::format("{}: the file is empty (0 bytes); copy it again from the original dataset or remove it",
                            file.string()));
  ImageFormat found = ImageFormat::unknown;
  if (got >= 4 && ((head[0] == 'I' && head[1] == 'I' && (head[2] == 42 || head[2] == 43) && head[3] == 0) ||
                   (head[0] == 'M' && head[1] == 'M' && head[2] == 0 && (head[3] == 42 || head[3] == 43)))) {
    found = ImageFormat::tiff;
  } else if (got == 8 && std::memcmp(head.data(), "\x89PNG\r\n\x1a\n", 8) == 0) {
    found = ImageFormat::png;
  } else if (got >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF) {
    found = ImageFormat::jpeg;
  }
  if (found == promised) return found;
  if (found == ImageFormat::unknown) {
    std::string bytes;
    for (size_t i = 0; i < got && i < 4; ++i) bytes += fmt::format("{}{:02x}", i ? " " : "", head[i]);
    throw Error(fmt::format("{}: the extension says {} but the content is not a {} file (it starts with bytes {}); "
                            "copy the file again from the original dataset or remove it",
                            file.string(), format_name(promised), format_name(promised), bytes));
  }
  throw Error(fmt::format("{}: the extension says {} but the content is {}; rename the file to match its content "
                          "or convert it",
                          file.string(), format_name(promised), format_name(found)));
}

ImageInfo decode_image_rgb(const fs::path& file, cv::Mat& rgb, uint64_t max_pixels) {
  const ImageFormat format = sniff_image_format(file);
  if (format == ImageFormat::tiff) return decode_tiff(file, rgb, max_pixels);
  return decode_with_opencv(file, format, rgb, max_pixels);
}

ImageInfo decode_image_rgb_opencv(const fs::path& file, cv::Mat& rgb) {
  const ImageFormat format = sniff_image_format(file);
  if (format == ImageFormat::tiff) {
    TiffReader reader(file);
    read_layout(reader, file, kDefaultMaxPixels);
  }
  return decode_with_opencv(file, format, rgb, kDefaultMaxPixels);
}

cv::Mat load_image_rgb(const fs::path& file, uint64_t max_pixels) {
  cv::Mat rgb;
  decode_image_rgb(file, rgb, max_pixels);
  return rgb;
}

void resize_square(const cv::Mat& rgb, int size, cv::Mat& out) {
  const bool shrinks = rgb.cols > size || rgb.rows > size;
  cv::resize(rgb, out, cv::Size(size, size), 0, 0, shrinks ? cv::INTER_AREA : cv::INTER_LINEAR);
}

}  // namespace bachlab::host
