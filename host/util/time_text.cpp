#include "host/util/time_text.h"

#include <fmt/format.h>

#include <cmath>
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

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds)) return "-";
  if (seconds < 60) return fmt::format("{:.1f}s", seconds);
  if (seconds < 3600) return fmt::format("{}m{:02d}s", static_cast<int>(seconds) / 60, static_cast<int>(seconds) % 60);
  return fmt::format("{}h{:02d}m", static_cast<int>(seconds) / 3600, (static_cast<int>(seconds) % 3600) / 60);
}

}  // namespace bachlab::host
