#pragma once
// What the synthetic-data tests (the drawing's and the dataset folder's) both ask.

#include <bachlab/sdk/error.h>

#include <opencv2/core.hpp>

#include <string>

namespace bachlab::test {

/// The message of the Error `f` throws, or "(no error)".
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

inline bool same_pixels(const cv::Mat& a, const cv::Mat& b) {
  return a.size() == b.size() && a.type() == b.type() && cv::norm(a, b, cv::NORM_INF) == 0;
}

}  // namespace bachlab::test
