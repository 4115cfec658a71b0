#include "host/config/toml_text.h"

#include <fmt/format.h>

#include <algorithm>
#include <sstream>

namespace bachlab::host {

namespace {

bool is_bare_key(const std::string& key) {
  if (key.empty()) return false;
  for (char c : key)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return false;
  return true;
}

// A string as a TOML basic string, escaped by toml++.
std::string quoted(const std::string& text) {
  std::ostringstream out;
  out << toml::value<std::string>(text);
  return out.str();
}

std::string key_text(const std::string& key) { return is_bare_key(key) ? key : quoted(key); }

// fmt's {} is the shortest text that reads back as the same double; TOML wants a float to
// look like one (1.0, not 1) and spells the specials inf and nan as fmt does.
std::string float_text(double v) {
  std::string text = fmt::format("{}", v);
  if (text.find_first_of(".eEn") == std::string::npos) text += ".0";
  return text;
}

bool is_array_of_tables(const toml::node& node) {
  const toml::array* array = node.as_array();
  return array && !array->empty() && array->is_array_of_tables();
}

std::string inline_table_text(const toml::table& table) {
  std::string out = "{ ";
  bool first = true;
  for (const auto& [key, value] : table) {
    out += (first ? "" : ", ") + key_text(std::string(key.str())) + " = " + toml_value_text(value);
    first = false;
  }
  return out + (first ? "}" : " }");
}

}  // namespace

std::string toml_value_text(const toml::node& node) {
  if (const auto* v = node.as_floating_point()) return float_text(v->get());
  if (const auto* v = node.as_string()) return quoted(v->get());
  if (const auto* table = node.as_table()) return inline_table_text(*table);
  if (const auto* array = node.as_array()) {
    std::string out = "[";
    for (size_t i = 0; i < array->size(); ++i) out += (i ? ", " : "") + toml_value_text(*array->get(i));
    return out + "]";
  }
  // Integers, booleans, dates and times: toml++ prints them exactly.
  std::ostringstream out;
  node.visit([&](const auto& value) { out << value; });
  return out.str();
}

namespace {

void write_table(const toml::table& table, const std::string& path, std::string& out) {
  for (const auto& [key, node] : table)
    if (!node.is_table() && !is_array_of_tables(node))
      out += key_text(std::string(key.str())) + " = " + toml_value_text(node) + "\n";
  for (const auto& [key, node] : table) {
    const std::string child = (path.empty() ? "" : path + ".") + key_text(std::string(key.str()));
    if (const auto* sub = node.as_table()) {
      // A table that holds only tables needs no header of its own ([data] over
      // [data.split]); an empty one keeps its header, which is what sets it.
      const bool only_tables =
          !sub->empty() && std::all_of(sub->begin(), sub->end(), [](const auto& entry) {
            return entry.second.is_table() || is_array_of_tables(entry.second);
          });
      if (!only_tables) out += "\n[" + child + "]\n";
      write_table(*sub, child, out);
    }
  }
  // Arrays of tables last, as toml++ prints them.
  for (const auto& [key, node] : table) {
    if (!is_array_of_tables(node)) continue;
    const std::string child = (path.empty() ? "" : path + ".") + key_text(std::string(key.str()));
    for (const auto& element : *node.as_array()) {
      out += "\n[[" + child + "]]\n";
      write_table(*element.as_table(), child, out);
    }
  }
}

}  // namespace

std::string toml_text(const toml::table& table) {
  std::string out;
  write_table(table, "", out);
  // A document that starts with a table header has no leading blank line.
  if (!out.empty() && out.front() == '\n') out.erase(0, 1);
  return out;
}

std::string toml_digest_text(const toml::table& table) {
  std::ostringstream out;
  out << table << "\n";
  return out.str();
}

}  // namespace bachlab::host
