#include "host/util/memory.h"

#include <mutex>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace bachlab::host {

void reuse_freed_memory() {
  static std::once_flag once;
  std::call_once(once, [] {
#if defined(__GLIBC__)
    // 32 MiB is the largest mmap threshold glibc accepts on 64-bit; setting it also stops
    // glibc from moving the threshold itself. Blocks above it (rare: a whole dataset
    // tensor) are still mapped on their own.
    mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    // Never give the heap top back; the next batch needs the same memory again.
    mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
#endif
  });
}

}  // namespace bachlab::host
