#include <bachlab/sdk/hash.h>

#include <cstring>

namespace bachlab::sdk {

uint64_t hash_bytes(const void* bytes, size_t size) {
  const auto* data = static_cast<const unsigned char*>(bytes);
  uint64_t hash = 0x9E3779B97F4A7C15ULL ^ size;
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t word;
    std::memcpy(&word, data + i, 8);
    hash ^= word * 0xff51afd7ed558ccdULL;
    hash = ((hash << 31) | (hash >> 33)) * 0x9E3779B97F4A7C15ULL;
  }
  for (; i < size; ++i) hash = (hash ^ data[i]) * 0x100000001b3ULL;
  hash ^= hash >> 33;
  hash *= 0xc4ceb9fe1a85ec53ULL;
  return hash ^ (hash >> 33);
}

uint64_t hash_text(const std::string& text) { return hash_bytes(text.data(), text.size()); }

}  // namespace bachlab::sdk
