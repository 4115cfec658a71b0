#pragma once
// Decoded photos as the uint8 (3, S, S) tensors training reads: the LibTorch half of
// decoding, kept apart from host/data/image_decode.h so that the decoder builds without it.

#include "host/data/image_decode.h"

#include <opencv2/core.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>

namespace bachlab::host {

/// Writes an RGB CV_8UC3 image of size S x S into `chw`, a contiguous uint8 (3,S,S) tensor.
void copy_to_chw(const cv::Mat& rgb, torch::Tensor chw);

/// One photo as training sees it: uint8 (3, size, size).
torch::Tensor preprocess_image(const std::filesystem::path& file, int image_size,
                               uint64_t max_pixels = kDefaultMaxPixels);

}  // namespace bachlab::host
