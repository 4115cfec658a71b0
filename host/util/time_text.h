#pragma once
// The current time as text, for run folders, run.json and the study store.

#include <string>

namespace bachlab::host {

enum class TimeZone { local, utc };

/// Now, formatted by strftime `format` (e.g. "%Y-%m-%d %H:%M:%S") in local time or UTC.
std::string now_text(const char* format, TimeZone zone = TimeZone::local);

}  // namespace bachlab::host
