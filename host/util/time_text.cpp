#include "host/util/time_text.h"

#include <ctime>

namespace bachlab::host {

std::string now_text(const char* format, TimeZone zone) {
  const std::time_t now = std::time(nullptr);
  std::tm parts{};
  if (zone == TimeZone::utc) {
    gmtime_r(&now, &parts);
  } else {
    localtime_r(&now, &parts);
  }
  char text[64];
  return std::string(text, std::strftime(text, sizeof text, format, &parts));
}

}  // namespace bachlab::host
