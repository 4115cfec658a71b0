#pragma once
// How messages and cache keys write a tensor's shape: "[4, 3, 224, 224]".

#include <c10/util/ArrayRef.h>

#include <cstdint>
#include <string>

namespace bachlab::host {

std::string shape_text(c10::IntArrayRef sizes);

}  // namespace bachlab::host
