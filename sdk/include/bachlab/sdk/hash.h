#pragma once
/// \file hash.h
/// The one non-cryptographic 64-bit hash of bachlab: names cache files (preprocessing,
/// frozen features), fingerprints a study's config and identifies a weights file's
/// content. Collisions are harmless wherever it is used: the full key is stored beside
/// what it names and compared.

#include <cstddef>
#include <cstdint>
#include <string>

namespace bachlab::sdk {

/// A 64-bit hash of raw bytes, eight at a time (FNV-1a byte by byte runs at a tenth of the
/// speed on a 100 MB weights file).
uint64_t hash_bytes(const void* bytes, size_t size);

/// hash_bytes of the characters of `text`.
uint64_t hash_text(const std::string& text);

}  // namespace bachlab::sdk
