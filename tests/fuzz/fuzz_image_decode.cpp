// libFuzzer target: the photo decoder (TIFF through libtiff, PNG and JPEG through OpenCV)
// with its pixel limit. The input is written to a file whose extension matches its magic
// bytes (so the decoders see it; other inputs take turns at .tif, .png and .jpg and test
// the content check). Checks that
//   * every bad file is a bachlab::Error naming it (no other exception, no crash, no
//     allocation beyond libFuzzer's -rss_limit_mb/-malloc_limit_mb);
//   * a decoded photo is 8-bit RGB of the size the decoder reports, within the limit;
//   * the same photo with a limit below its size is refused before decoding, by a message
//     that names [data] max_pixels.

#include "fuzz_common.h"

#include "host/data/image_decode.h"

#include <opencv2/core.hpp>

#include <cstring>
#include <string>

namespace {

// 1 megapixel: a photo within it decodes in well under libFuzzer's memory limit, so an
// input that exhausts memory has got past the limit; and in well under its -timeout on a
// loaded machine (a 3-megapixel photo through libtiff's RGBA path took 0.6 s of CPU under
// ASan, and over 10 s of wall time on a machine with a load of 8 per core).
constexpr uint64_t kFuzzMaxPixels = uint64_t(1) << 20;

const char* extension_for(const uint8_t* data, size_t size) {
  if (size >= 4 && (std::memcmp(data, "II", 2) == 0 || std::memcmp(data, "MM", 2) == 0)) return ".tif";
  if (size >= 4 && std::memcmp(data, "\x89PNG", 4) == 0) return ".png";
  if (size >= 2 && data[0] == 0xFF && data[1] == 0xD8) return ".jpg";
  static const char* const any[] = {".tif", ".png", ".jpg"};
  return any[size % 3];
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  cv::setNumThreads(0);  // one thread: reproducible runs, and libFuzzer's timeout sees the work
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto file = bachlab::fuzz::scratch_dir("image") / (std::string("photo") + extension_for(data, size));
  bachlab::fuzz::write_file(file, std::string(reinterpret_cast<const char*>(data), size));
  cv::Mat rgb;
  bachlab::host::ImageInfo info;
  bool decoded = false;
  bachlab::fuzz::expect_only_bachlab_errors("decode_image_rgb", [&] {
    try {
      info = bachlab::host::decode_image_rgb(file, rgb, kFuzzMaxPixels);
      decoded = true;
    } catch (const bachlab::Error& e) {
      bachlab::fuzz::require(std::string(e.what()).rfind(file.string() + ":", 0) == 0,
                             "an error that does not start with the file's name: " + std::string(e.what()));
      throw;
    }
  });
  if (!decoded) return 0;
  const uint64_t pixels = uint64_t(info.width) * uint64_t(info.height);
  bachlab::fuzz::require(rgb.type() == CV_8UC3 && rgb.cols == info.width && rgb.rows == info.height,
                         "the decoded image is not 8-bit RGB of the reported size");
  bachlab::fuzz::require(pixels >= 1 && pixels <= kFuzzMaxPixels, "a photo beyond the pixel limit was decoded");
  if (pixels > 1) {
    bool refused = false;
    bachlab::fuzz::expect_only_bachlab_errors("decode_image_rgb below the limit", [&] {
      try {
        cv::Mat small;
        bachlab::host::decode_image_rgb(file, small, pixels - 1);
      } catch (const bachlab::Error& e) {
        refused = std::string(e.what()).find("max_pixels") != std::string::npos;
        throw;
      }
    });
    bachlab::fuzz::require(refused, "a photo of " + std::to_string(pixels) +
                                        " pixels was not refused with a limit of one pixel less");
  }
  return 0;
}
