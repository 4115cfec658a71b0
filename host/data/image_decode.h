#pragma once
// Decoding one photo into 8-bit RGB and shrinking it to the network's input, exactly as
// training sees it. TIFFs go through libtiff strip by strip (or tile by tile), so any
// compression libtiff was built with works and a broken file is reported, never printed
// by libtiff or half-decoded; PNG and JPEG go through OpenCV. The content decides the
// decoder only after it has been checked against the extension, so a mislabelled file is
// an error that names it rather than a surprise later. No LibTorch here (the fuzz build
// compiles this file alone); the tensor side is in host/data/image_tensor.h.

#include <opencv2/core.hpp>

#include <cstdint>

#include <filesystem>
#include <string>

namespace bachlab::host {

/// The most pixels a photo may have: checked from its header before anything is decoded,
/// for every format, because decoders allocate what the header claims (a 3 MB PNG can claim
/// 20000x20000 16-bit RGBA, 3.2 GB decoded). 2^28 (268 megapixels, about 2 GB per decoding
/// worker at worst); BACH photos have 3.1 megapixels. [data] max_pixels changes it.
inline constexpr uint64_t kDefaultMaxPixels = uint64_t(1) << 28;

/// What a file's first bytes say it is.
enum class ImageFormat { tiff, png, jpeg, unknown };

/// "TIFF", "PNG", "JPEG" or "unknown": the words error messages use.
const char* format_name(ImageFormat format);

/// The format an extension promises (.tif/.tiff, .png, .jpg/.jpeg, any case); unknown
/// for every other extension.
ImageFormat format_from_extension(const std::filesystem::path& file);

/// True for the extensions bachlab reads.
bool has_image_extension(const std::filesystem::path& file);

/// Reads the magic bytes. Throws Error if the file cannot be opened, is empty, or its
/// content does not match its extension.
ImageFormat sniff_image_format(const std::filesystem::path& file);

/// What a photo is, as the exploration report shows it.
struct ImageInfo {
  int width = 0;
  int height = 0;
  ImageFormat format = ImageFormat::unknown;
  /// Colour model and depth as stored, e.g. "RGB 8-bit", "RGBA 8-bit", "gray 16-bit".
  std::string mode;
  /// TIFF compression ("none", "LZW", "Deflate", "JPEG", ...); empty for PNG and JPEG.
  std::string compression;
};

/// Decodes `file` into `rgb` (CV_8UC3, R,G,B order), reusing its buffer when the size
/// matches so that a worker decoding many photos allocates once. Alpha is dropped, gray
/// is expanded, 16-bit samples are scaled to 8 bits. Throws Error naming the file and the
/// problem for every unreadable, truncated, corrupt or unsupported file, and for one whose
/// header claims more than `max_pixels` pixels (before decoding it).
ImageInfo decode_image_rgb(const std::filesystem::path& file, cv::Mat& rgb,
                           uint64_t max_pixels = kDefaultMaxPixels);

/// The same through OpenCV's imread for every format: the comparison the benchmark makes.
ImageInfo decode_image_rgb_opencv(const std::filesystem::path& file, cv::Mat& rgb);

/// 8-bit RGB (CV_8UC3), any supported format; throws Error.
cv::Mat load_image_rgb(const std::filesystem::path& file, uint64_t max_pixels = kDefaultMaxPixels);

/// The training resize: `size` x `size`, INTER_AREA when either side shrinks (it averages
/// every source pixel instead of sampling a few), INTER_LINEAR when both grow.
void resize_square(const cv::Mat& rgb, int size, cv::Mat& out);

}  // namespace bachlab::host
