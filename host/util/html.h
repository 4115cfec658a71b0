#pragma once
// Text encodings the reports (dataset exploration, run reports, CSV files) share: escaping
// for HTML and CSV, and base64 for pictures inlined as data: URIs, so a report is one
// portable file.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bachlab::host {

/// `text` with &, <, > and " replaced by their entities; safe in element text and in
/// double-quoted attributes.
std::string html_escape(std::string_view text);

/// The start of a report page, up to and including <body>: the look every bachlab report
/// shares (sans-serif, bordered tables with numbers right-aligned, two pictures a row),
/// then `extra_css`, the page's own rules, which win. `title` is escaped here.
std::string html_page_start(std::string_view title, std::string_view extra_css = {});

/// What html_page_start opened, closed.
inline constexpr std::string_view kHtmlPageEnd = "</body></html>\n";

/// Base64 of `bytes` (RFC 4648, with padding).
std::string base64_encode(std::string_view bytes);

/// `text` as one CSV field (RFC 4180): quoted, with quotes doubled, if it holds a comma, a
/// quote or a line break; as is otherwise.
std::string csv_field(std::string_view text);

/// The rows of CSV `text` (RFC 4180, as csv_field writes it): quoted fields may hold commas,
/// doubled quotes and line breaks. A final line break ends the last row, not a new one.
std::vector<std::vector<std::string>> csv_rows(std::string_view text);

/// Base64 of `bytes` (RFC 4648, with padding).
inline std::string base64_encode(const std::vector<uint8_t>& bytes) {
  return base64_encode(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

}  // namespace bachlab::host
