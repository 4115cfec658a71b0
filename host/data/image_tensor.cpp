#include "host/data/image_tensor.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>

#include <vector>

namespace bachlab::host {

namespace fs = std::filesystem;

void copy_to_chw(const cv::Mat& rgb, torch::Tensor chw) {
  const int64_t size = chw.size(1);
  TORCH_CHECK(chw.is_contiguous() && chw.scalar_type() == torch::kUInt8 && chw.size(0) == 3 &&
                  rgb.rows == size && rgb.cols == chw.size(2) && rgb.type() == CV_8UC3,
              "copy_to_chw: shapes disagree");
  uint8_t* base = chw.data_ptr<uint8_t>();
  std::vector<cv::Mat> planes;
  for (int c = 0; c < 3; ++c) planes.emplace_back(rgb.rows, rgb.cols, CV_8UC1, base + size_t(c) * rgb.rows * rgb.cols);
  cv::split(rgb, planes);
}

torch::Tensor preprocess_image(const fs::path& file, int image_size, uint64_t max_pixels) {
  if (image_size < 1) throw Error(fmt::format("preprocess_image: image_size must be >= 1 (was {})", image_size));
  cv::Mat rgb, small;
  decode_image_rgb(file, rgb, max_pixels);
  resize_square(rgb, image_size, small);
  torch::Tensor out = torch::empty({3, image_size, image_size}, torch::kUInt8);
  copy_to_chw(small, out);
  return out;
}

}  // namespace bachlab::host
