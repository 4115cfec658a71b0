#pragma once
// Encoding 8-bit RGB as TIFF, the writing side of image_decode.h. The files are laid out
// as the BACH photos are (uncompressed, contiguous RGB, in strips), so that decoding
// synthetic photos costs what decoding real ones does. The bytes are made in memory, so
// that the caller writes them as every file is written (host/util/atomic_file.h): a reader
// never sees half a TIFF.

#include <opencv2/core.hpp>

#include <string>

namespace bachlab::host {

/// The TIFF file of `rgb` (CV_8UC3, R,G,B order): uncompressed, about 64 KiB of pixels per
/// strip, a resolution of 1e4 / `pixel_microns` pixels per centimetre and `software` as its
/// Software tag. The same image and tags always give the same bytes. Throws Error for an
/// image that is not 8-bit RGB, or with libtiff's reason if encoding fails.
std::string encode_rgb_tiff(const cv::Mat& rgb, double pixel_microns, const std::string& software);

}  // namespace bachlab::host
