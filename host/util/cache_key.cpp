#include "host/util/cache_key.h"

#include <sstream>

namespace bachlab::host {

std::optional<std::pair<std::string, std::string>> first_differing_lines(const std::string& stored,
                                                                         const std::string& current) {
  std::istringstream a(stored), b(current);
  std::string left, right;
  while (true) {
    const bool more_a = bool(std::getline(a, left)), more_b = bool(std::getline(b, right));
    if (!more_a && !more_b) return std::nullopt;
    if (!more_a) left.clear();
    if (!more_b) right.clear();
    if (left != right || !more_a || !more_b) return std::make_pair(left, right);
  }
}

}  // namespace bachlab::host
