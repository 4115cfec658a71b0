#pragma once
// Times as text: now, for run folders, run.json and the study store; a duration, for tables
// and progress lines.

#include <string>

namespace bachlab::host {

enum class TimeZone { local, utc };

/// Now, formatted by strftime `format` (e.g. "%Y-%m-%d %H:%M:%S") in local time or UTC.
std::string now_text(const char* format, TimeZone zone = TimeZone::local);

/// A duration as tables and progress lines show it: "12.3s", "4m05s", "2h10m"; "-" if not
/// finite.
std::string format_duration(double seconds);

}  // namespace bachlab::host
