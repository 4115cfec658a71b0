#pragma once
// TOML text of a toml++ table, as bachlab writes it (config.toml of a run folder, a tuning
// trial's config). toml++ 3.3 as Debian builds it prints every float with 17 significant
// digits (0.15 becomes 0.14999999999999999); this writer prints the shortest text that
// reads back as the same double, and otherwise what toml++ would: values before tables,
// [table] and [[array.of.tables]] headers, strings escaped by toml++ itself.

#include <toml++/toml.h>

#include <string>

namespace bachlab::host {

/// The table as a TOML document; parsing it gives back the same table, bit for bit.
std::string toml_text(const toml::table& table);

/// The document as toml++ prints it (floats with 17 digits), for digests and keys only:
/// the form bachlab made them from before toml_text(), so that a study or trial recorded
/// then is still recognised.
std::string toml_digest_text(const toml::table& table);

/// One value as toml_text() writes it (a table inline, an array on one line).
std::string toml_value_text(const toml::node& value);

}  // namespace bachlab::host
