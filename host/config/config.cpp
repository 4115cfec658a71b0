#include "host/config/config.h"
#include "host/config/toml_text.h"

#include <bachlab/sdk/param_table.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <set>
#include <map>
#include <optional>
#include <sstream>

namespace bachlab::host {

namespace fs = std::filesystem;
using sdk::Origin;
using sdk::ParamTable;

namespace {

// Our own tree of the merged config. toml++ does not keep source positions when nodes are
// copied, and merging `extends` chains needs copies, so each file is converted into this
// tree once, with every value's file and line, and the trees are merged.
struct Table {
  struct Entry {
    sdk::Value value;
    Origin origin;
  };
  Origin origin;
  std::map<std::string, Entry> values;
  std::map<std::string, Table> tables;
  std::map<std::string, std::vector<Table>> arrays;
};

Origin origin_of(const toml::node& node, const std::string& file) {
  return Origin{file, static_cast<int>(node.source().begin.line)};
}

std::string join(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "." + key;
}

// Converts one scalar; returns false (with a problem recorded) for dates and nested arrays.
bool to_scalar(const toml::node& node, sdk::Scalar& out) {
  if (auto v = node.as_string()) return out = v->get(), true;
  if (auto v = node.as_integer()) return out = v->get(), true;
  if (auto v = node.as_floating_point()) return out = v->get(), true;
  if (auto v = node.as_boolean()) return out = v->get(), true;
  return false;
}

void convert(const toml::table& in, Table& out, const std::string& name, const std::string& file,
             std::vector<std::string>& problems) {
  for (auto&& [key, node] : in) {
    const std::string k(key.str());
    const std::string full = join(name, k);
    Origin origin = origin_of(node, file);
    if (auto* table = node.as_table()) {
      Table& child = out.tables[k];
      child.origin = origin;
      convert(*table, child, full, file, problems);
    } else if (auto* array = node.as_array()) {
      if (!array->empty() && array->is_array_of_tables()) {
        auto& list = out.arrays[k];
        for (auto&& element : *array) {
          list.emplace_back();
          list.back().origin = origin_of(element, file);
          convert(*element.as_table(), list.back(), full, file, problems);
        }
        continue;
      }
      std::vector<sdk::Scalar> items;
      for (auto&& element : *array) {
        sdk::Scalar scalar;
        if (!to_scalar(element, scalar)) {
          problems.push_back(origin.prefix() + full +
                             ": lists may hold only strings, numbers and booleans (found a nested list, table or date)");
          break;
        }
        items.push_back(std::move(scalar));
      }
      out.values[k] = {std::move(items), origin};
    } else {
      sdk::Scalar scalar;
      if (!to_scalar(node, scalar)) {
        problems.push_back(origin.prefix() + full + ": dates and times are not supported; write a string");
        continue;
      }
      sdk::Value value = std::visit([](auto&& s) -> sdk::Value { return s; }, scalar);
      out.values[k] = {std::move(value), origin};
    }
  }
}

// Overlays `child` on `base`: values replace, tables merge, arrays of tables replace.
void merge(Table& base, Table&& child) {
  base.origin = child.origin;
  for (auto& [key, entry] : child.values) base.values[key] = std::move(entry);
  for (auto& [key, table] : child.tables) {
    auto it = base.tables.find(key);
    if (it == base.tables.end()) {
      base.tables.emplace(key, std::move(table));
    } else {
      merge(it->second, std::move(table));
    }
  }
  for (auto& [key, list] : child.arrays) base.arrays[key] = std::move(list);
}

Table parse_text(const std::string& text, const std::string& file) {
  toml::table parsed;
  try {
    parsed = toml::parse(text, file);
  } catch (const toml::parse_error& e) {
    throw Error(Origin{file, static_cast<int>(e.source().begin.line)}.prefix() + "TOML syntax error: " +
                std::string(e.description()));
  }
  Table root;
  root.origin = Origin{file, 0};
  std::vector<std::string> problems;
  convert(parsed, root, "", file, problems);
  if (!problems.empty()) {
    std::string message;
    for (const auto& p : problems) message += (message.empty() ? "" : "\n") + p;
    throw Error(message);
  }
  return root;
}

// A config is a page of settings; anything larger is not one.
constexpr uintmax_t kMaxConfigBytes = 1 << 20;

// The type of the file at `path`; not_found when it is not there. std::filesystem's
// throwing calls would let a path the system refuses (longer than its limit, a file used
// as a folder, no permission to look) escape as its own exception: here every such answer
// is an Error that names the path and, through `what`, the key that gave it.
fs::file_type file_type_of(const fs::path& path, const std::string& what) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec && status.type() != fs::file_type::not_found)
    throw Error(what + path.string() + ": cannot look at this path (" + ec.message() + ")");
  return status.type();
}

Table load_file(const fs::path& path, std::vector<fs::path>& chain, const std::string& what) {
  const fs::file_type type = file_type_of(path, what);
  std::error_code ec;
  fs::path canonical = fs::weakly_canonical(path, ec);
  if (ec) canonical = path.lexically_normal();
  for (const auto& seen : chain) {
    if (seen == canonical) {
      std::string cycle;
      for (const auto& p : chain) cycle += p.string() + " -> ";
      throw Error(path.string() + ": extends cycle: " + cycle + canonical.string());
    }
  }
  // Only regular files of a sane size: `extends = "/dev/zero"` would read until memory runs
  // out, a FIFO would block for ever, and a folder would read as an empty config.
  if (type == fs::file_type::not_found) throw Error(path.string() + ": cannot read config file (no such file)");
  if (type != fs::file_type::regular)
    throw Error(path.string() + ": cannot read config file (it is " +
                (type == fs::file_type::directory ? "a folder" : "not a regular file but a device, pipe or socket") +
                "); name a .toml file");
  const uintmax_t size = fs::file_size(path, ec);
  if (!ec && size > kMaxConfigBytes)
    throw Error(path.string() + ": cannot read config file (it is " + std::to_string(size) +
                " bytes; a config is at most " + std::to_string(kMaxConfigBytes) + " bytes); name a .toml file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot read config file (permission denied)");
  std::stringstream buffer;
  buffer << in.rdbuf();
  Table table = parse_text(buffer.str(), path.string());

  auto extends = table.values.find("extends");
  if (extends == table.values.end()) return table;
  const auto* base_name = std::get_if<std::string>(&extends->second.value);
  if (!base_name)
    throw Error(extends->second.origin.prefix() + "extends must be a string naming a config file (was " +
                sdk::type_name(extends->second.value) + " " + sdk::to_string(extends->second.value) + ")");
  fs::path base_path = fs::path(*base_name).is_absolute() ? fs::path(*base_name) : path.parent_path() / *base_name;
  const std::string extends_key = extends->second.origin.prefix() + "extends: ";
  if (file_type_of(base_path, extends_key) == fs::file_type::not_found)
    throw Error(extends->second.origin.prefix() + "extends names " + base_path.string() + ", which does not exist");
  chain.push_back(canonical);
  Table merged = load_file(base_path, chain, extends_key);
  chain.pop_back();
  merge(merged, std::move(table));
  merged.values.erase("extends");
  merged.origin = Origin{path.string(), 0};
  return merged;
}

// Finds the table at a dotted path, or null.
const Table* find_table(const Table& root, const std::string& name) {
  if (name.empty()) return &root;
  const Table* current = &root;
  std::stringstream stream(name);
  std::string part;
  while (std::getline(stream, part, '.')) {
    auto it = current->tables.find(part);
    if (it == current->tables.end()) return nullptr;
    current = &it->second;
  }
  return current;
}

ParamTable to_params(const Table* table, const std::string& label, const Origin& fallback) {
  ParamTable params(label, table ? table->origin : fallback);
  if (table)
    for (const auto& [key, entry] : table->values) params.set(key, entry.value, entry.origin);
  return params;
}

void to_toml(const Table& in, toml::table& out) {
  for (const auto& item : in.values) {
    // Named, not a structured binding: a lambda below uses the key (C++17 lambdas cannot
    // capture structured bindings, which clang enforces).
    const std::string& key = item.first;
    const Table::Entry& entry = item.second;
    auto scalar_node = [](const sdk::Scalar& s, toml::array& array) {
      std::visit([&](auto&& v) { array.push_back(v); }, s);
    };
    if (const auto* list = std::get_if<std::vector<sdk::Scalar>>(&entry.value)) {
      toml::array array;
      for (const auto& s : *list) scalar_node(s, array);
      out.insert_or_assign(key, std::move(array));
    } else {
      std::visit(
          [&](auto&& v) {
            if constexpr (!std::is_same_v<std::decay_t<decltype(v)>, std::vector<sdk::Scalar>>)
              out.insert_or_assign(key, v);
          },
          entry.value);
    }
  }
  for (const auto& [key, table] : in.tables) {
    toml::table child;
    to_toml(table, child);
    out.insert_or_assign(key, std::move(child));
  }
  for (const auto& [key, list] : in.arrays) {
    toml::array array;
    for (const auto& table : list) {
      toml::table child;
      to_toml(table, child);
      array.push_back(std::move(child));
    }
    out.insert_or_assign(key, std::move(array));
  }
}

// The offset of the first byte of `text` that does not begin a valid UTF-8 sequence (an
// overlong form, a surrogate or a code point above U+10FFFF included), or npos.
size_t invalid_utf8_at(const std::string& text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    if (lead < 0x80) {
      ++i;
      continue;
    }
    size_t more = 0;
    uint32_t code = 0;
    if ((lead & 0xE0) == 0xC0) {
      more = 1, code = lead & 0x1F;
    } else if ((lead & 0xF0) == 0xE0) {
      more = 2, code = lead & 0x0F;
    } else if ((lead & 0xF8) == 0xF0) {
      more = 3, code = lead & 0x07;
    } else {
      return i;
    }
    if (text.size() - i <= more) return i;
    for (size_t k = 1; k <= more; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return i;
      code = code << 6 | (next & 0x3F);
    }
    const uint32_t smallest[] = {0, 0x80, 0x800, 0x10000};
    if (code < smallest[more] || (code >= 0xD800 && code <= 0xDFFF) || code > 0x10FFFF) return i;
    i += more + 1;
  }
  return std::string::npos;
}

}  // namespace

struct Config::Impl {
  Table root;
  std::map<std::string, ParamTable> tables;
  std::map<std::string, std::vector<ParamTable>> arrays;
  std::set<std::string> known;  // tables some reader asked for, present or not
};

Config::Config() : impl_(std::make_unique<Impl>()) {}
Config::~Config() = default;
Config::Config(Config&&) noexcept = default;
Config& Config::operator=(Config&&) noexcept = default;

Config Config::load(const fs::path& path) {
  Config config;
  std::vector<fs::path> chain;
  config.impl_->root = load_file(path, chain, "config file: ");
  config.path_ = path;
  return config;
}

Config Config::parse(const std::string& text, const std::string& name) {
  Config config;
  config.impl_->root = parse_text(text, name);
  if (config.impl_->root.values.count("extends"))
    throw Error(name + ": extends is only supported for config files (use Config::load)");
  config.path_ = name;
  return config;
}

ParamTable& Config::table(const std::string& name) {
  impl_->known.insert(name);
  auto it = impl_->tables.find(name);
  if (it != impl_->tables.end()) return it->second;
  ParamTable params = to_params(find_table(impl_->root, name), "[" + name + "]", Origin{path_.string(), 0});
  return impl_->tables.emplace(name, std::move(params)).first->second;
}

std::vector<ParamTable>& Config::array(const std::string& name) {
  impl_->known.insert(name);
  auto it = impl_->arrays.find(name);
  if (it != impl_->arrays.end()) return it->second;
  std::vector<ParamTable> list;
  auto dot = name.rfind('.');
  const Table* parent = find_table(impl_->root, dot == std::string::npos ? "" : name.substr(0, dot));
  const std::string leaf = dot == std::string::npos ? name : name.substr(dot + 1);
  if (parent) {
    auto found = parent->arrays.find(leaf);
    if (found != parent->arrays.end()) {
      for (size_t i = 0; i < found->second.size(); ++i)
        list.push_back(to_params(&found->second[i], "[[" + name + "]] #" + std::to_string(i + 1), {}));
    }
  }
  return impl_->arrays.emplace(name, std::move(list)).first->second;
}

std::vector<std::string> Config::subtables(const std::string& name) {
  impl_->known.insert(name);
  const Table* table = find_table(impl_->root, name);
  if (!table) return {};
  std::vector<std::pair<std::string, Origin>> children;
  for (const auto& [key, child] : table->tables) {
    children.emplace_back(key, child.origin);
    impl_->known.insert(join(name, key));
  }
  // toml++ keeps keys sorted; the user's order is the order of lines (files of an extends
  // chain keep their own line numbers, which is good enough for ordering dimensions).
  std::stable_sort(children.begin(), children.end(),
                   [](const auto& a, const auto& b) { return a.second.line < b.second.line; });
  std::vector<std::string> names;
  for (const auto& [key, origin] : children) names.push_back(key);
  return names;
}

Config Config::load(const fs::path& path, const std::vector<std::string>& overrides) {
  Config config = load(path);
  config.apply_overrides(overrides);
  return config;
}

namespace {

bool is_dotted_key(const std::string& key) {
  return !key.empty() &&
         key.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") ==
             std::string::npos &&
         key.front() != '.' && key.back() != '.';
}

}  // namespace

bool Config::is_override(const std::string& argument) {
  if (!argument.empty() && argument.front() == '~') return is_dotted_key(argument.substr(1));
  const size_t start = !argument.empty() && argument.front() == '+' ? 1 : 0;
  const auto equals = argument.find('=');
  if (equals == std::string::npos || equals == start) return false;
  return is_dotted_key(argument.substr(start, equals - start));
}

namespace {

std::vector<std::string> split_key(const std::string& key) {
  std::stringstream stream(key);
  std::vector<std::string> parts;
  for (std::string part; std::getline(stream, part, '.');) parts.push_back(part);
  return parts;
}

// The element of the array of tables [[name]] that `index` (0-based, as typed) names; an
// Error naming how many there are when it names none. `context` begins the message.
Table& element_of(std::vector<Table>& list, const std::string& index, const std::string& name,
                  const std::string& context) {
  const std::string count = std::to_string(list.size()) + (list.size() == 1 ? " table" : " tables") +
                            (list.empty() ? "" : " (indices 0-" + std::to_string(list.size() - 1) + ")");
  if (index.empty() || index.size() > 9 || index.find_first_not_of("0123456789") != std::string::npos)
    throw Error(context + "[[" + name + "]] is an array of " + count + "; name one by its 0-based index, e.g. " +
                name + ".0." + index);
  const size_t i = std::stoul(index);
  if (i >= list.size())
    throw Error(context + "[[" + name + "]] has " + count + ", so there is no table " + index + "; append one with +" +
                name + "={plugin = \"...\"}");
  return list[i];
}

// Where a dotted key of an override leads: the table holding its last part, through tables
// and elements of arrays of tables (the part after an array's name is an element's 0-based
// index). `array` names an array of `table` when the last part is an index into it. With
// `create`, missing tables are made, with that origin; without, a missing one gives null.
struct Place {
  Table* table = nullptr;
  std::string array;
};

Place find_place(Table& root, const std::vector<std::string>& parts, const Origin* create, const std::string& context) {
  Table* table = &root;
  std::string walked;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    walked = join(walked, parts[i]);
    if (table->values.count(parts[i])) throw Error(context + walked + " is a value, not a table");
    if (auto array = table->arrays.find(parts[i]); array != table->arrays.end()) {
      if (i + 2 == parts.size()) return {table, parts[i]};
      table = &element_of(array->second, parts[i + 1], walked, context);
      walked = join(walked, parts[++i]);
      continue;
    }
    auto it = table->tables.find(parts[i]);
    if (it == table->tables.end()) {
      if (!create) return {};
      it = table->tables.try_emplace(parts[i]).first;
      it->second.origin = *create;
    }
    table = &it->second;
  }
  return {table, ""};
}

// Every origin in `table` set to `origin`: a table typed on the command line has no lines.
void set_origin(Table& table, const Origin& origin) {
  table.origin = origin;
  for (auto& [key, entry] : table.values) entry.origin = origin;
  for (auto& [key, child] : table.tables) set_origin(child, origin);
  for (auto& [key, list] : table.arrays)
    for (auto& element : list) set_origin(element, origin);
}

}  // namespace

void Config::remove_key(const std::string& key, const std::string& source) {
  const std::vector<std::string> parts = split_key(key);
  const std::string context = source + ": ~" + key + ": ";
  const Place place = find_place(impl_->root, parts, nullptr, context);
  const std::string& leaf = parts.back();
  if (place.table && !place.array.empty()) {
    std::vector<Table>& list = place.table->arrays.at(place.array);
    element_of(list, leaf, key.substr(0, key.rfind('.')), context);
    list.erase(list.begin() + static_cast<std::ptrdiff_t>(std::stoul(leaf)));
    // An empty array would be saved as `augment = []`, a value rather than tables.
    if (list.empty()) place.table->arrays.erase(place.array);
    return;
  }
  Table* table = place.table;
  if (!table || (table->values.erase(leaf) + table->tables.erase(leaf) + table->arrays.erase(leaf)) == 0)
    throw Error(context + "the config has no key or table " + key + " to remove");
}

void Config::apply_overrides(const std::vector<std::string>& overrides, const std::string& source) {
  // No line: the prefix reads "command line: ", and get_path() leaves relative paths to
  // the working directory, where the user typed them.
  const Origin origin{source, 0};
  std::map<std::string, std::string> given;  // key -> its value as typed, to refuse a second one
  for (const auto& assignment : overrides) {
    if (!is_override(assignment))
      throw Error(source + ": \"" + assignment +
                  "\" is not an override; write KEY=VALUE with the key as a dotted path, e.g. train.epochs=5, "
                  "~KEY to remove a key or table, or +KEY={...} to append a table to an array of tables");
    if (assignment.front() == '~') {
      remove_key(assignment.substr(1), source);
      continue;
    }
    const bool append = assignment.front() == '+';
    const auto equals = assignment.find('=');
    const std::string key = assignment.substr(append ? 1 : 0, equals - (append ? 1 : 0));
    const std::string text = assignment.substr(equals + 1);
    const std::string context = source + ": " + assignment + ": ";
    // Appending twice is two tables; setting twice is a mistake.
    if (const auto [first, fresh] = given.emplace(key, text); !fresh && !append)
      throw Error(source + ": " + key + " is given twice (" + first->second + ", then " + text +
                  "); give it once, so what runs is what was meant");
    // A config is UTF-8 text: toml++ would save other bytes as other characters (0xE9, a
    // Latin-1 e-acute, as U+00E9), so the run folder's config.toml would name another file.
    if (const size_t bad = invalid_utf8_at(text); bad != std::string::npos) {
      char byte[8];
      std::snprintf(byte, sizeof byte, "0x%02x", static_cast<unsigned char>(text[bad]));
      throw Error(source + ": " + key + "=...: the value is not UTF-8 text (byte " + byte + " at position " +
                  std::to_string(bad + 1) + " of the value); a config holds UTF-8 text only, so write the value in "
                  "UTF-8 (a file name in another encoding: rename the file, or put it in a folder with a UTF-8 name)");
    }
    sdk::Value value = std::string(text);
    std::optional<Table> table_value;  // +KEY={...}
    try {
      // As TOML reads it; a bare word (model.plugin=model4b) is not TOML, so it stays a string.
      toml::table parsed = toml::parse("v = " + text);
      if (const toml::node* node = parsed.get("v")) {
        if (auto* array = node->as_array()) {
          std::vector<sdk::Scalar> items;
          for (auto&& element : *array) {
            sdk::Scalar scalar;
            if (!to_scalar(element, scalar))
              throw Error(source + ": " + key + ": lists may hold only strings, numbers and booleans");
            items.push_back(std::move(scalar));
          }
          value = std::move(items);
        } else if (auto* inline_table = node->as_table()) {
          if (append) {
            std::vector<std::string> problems;
            table_value.emplace();
            convert(*inline_table, *table_value, key, source, problems);
            if (!problems.empty()) throw Error(context + problems.front());
            set_origin(*table_value, origin);
          }
        } else {
          sdk::Scalar scalar;
          if (to_scalar(*node, scalar)) value = std::visit([](auto&& v) -> sdk::Value { return v; }, scalar);
        }
      }
    } catch (const toml::parse_error&) {
    }
    const std::vector<std::string> parts = split_key(key);
    const std::string& leaf = parts.back();
    const Place place = find_place(impl_->root, parts, &origin, context);
    Table* table = place.table;
    if (!place.array.empty()) {
      // augment.0=... or +augment.0=...: an element is a table, set or appended to by key.
      element_of(table->arrays.at(place.array), leaf, key.substr(0, key.rfind('.')), context);
      throw Error(context + key + " is a table; set one of its keys, e.g. " + key + ".KEY=VALUE");
    }
    if (append) {
      if (!table_value)
        throw Error(context + "+KEY appends a table to the array of tables KEY, so the value must be an inline "
                    "table, e.g. '+" + key + "={plugin = \"flip\"}' (quoted for the shell)");
      if (table->values.count(leaf) || table->tables.count(leaf))
        throw Error(context + key + " is a " + (table->values.count(leaf) ? "value" : "table") +
                    ", not an array of tables, so no table can be appended to it");
      table->arrays[leaf].push_back(std::move(*table_value));
      continue;
    }
    if (table->tables.count(leaf) || table->arrays.count(leaf))
      throw Error(context + key + " is " + (table->tables.count(leaf) ? "a table" : "an array of tables") +
                  "; set one of its keys, e.g. " + key + (table->tables.count(leaf) ? "" : ".0") + ".KEY=VALUE");
    table->values[leaf] = {std::move(value), origin};
  }
}

std::vector<std::pair<std::string, const ParamTable*>> Config::tables_read() const {
  std::vector<std::pair<std::string, const ParamTable*>> out;
  for (const auto& [name, params] : impl_->tables) out.emplace_back("[" + name + "]", &params);
  for (const auto& [name, list] : impl_->arrays)
    for (const auto& params : list) out.emplace_back("[[" + name + "]]", &params);
  return out;
}

bool Config::contains(const std::string& name) const {
  if (find_table(impl_->root, name)) return true;
  auto dot = name.rfind('.');
  const Table* parent = find_table(impl_->root, dot == std::string::npos ? "" : name.substr(0, dot));
  return parent && parent->arrays.count(dot == std::string::npos ? name : name.substr(dot + 1));
}

std::vector<sdk::ParamProblem> Config::structured_problems() const {
  std::vector<sdk::ParamProblem> out;
  std::vector<std::string> known(impl_->known.begin(), impl_->known.end());
  // A problem of the file's layout (a key or table no reader takes) names no table.
  auto add = [&](const Origin& origin, std::string message) {
    out.push_back(sdk::ParamProblem{"", "", origin, std::move(message)});
  };

  for (const auto& [key, entry] : impl_->root.values) {
    std::string hint = sdk::closest_match(key, known);
    add(entry.origin, "unknown top-level key \"" + key + "\"" +
                          (hint.empty() ? "; settings belong in a table such as [train]"
                                        : "; did you mean the table [" + hint + "]?"));
  }
  // Walks every table and array of tables, reporting those no reader asked for.
  std::function<void(const Table&, const std::string&)> walk = [&](const Table& table, const std::string& name) {
    for (const auto& [key, child] : table.tables) {
      std::string full = join(name, key);
      if (!impl_->known.count(full)) {
        std::string hint = sdk::closest_match(full, known);
        add(child.origin, "unknown table [" + full + "]" + (hint.empty() ? "" : "; did you mean [" + hint + "]?"));
        continue;
      }
      walk(child, full);
    }
    for (const auto& [key, list] : table.arrays) {
      std::string full = join(name, key);
      if (!impl_->known.count(full)) {
        std::string hint = sdk::closest_match(full, known);
        add(list.front().origin,
            "unknown array of tables [[" + full + "]]" + (hint.empty() ? "" : "; did you mean [[" + hint + "]]?"));
      }
    }
  };
  walk(impl_->root, "");

  for (const auto& [name, params] : impl_->tables)
    for (auto& problem : params.structured_problems()) out.push_back(std::move(problem));
  for (const auto& [name, list] : impl_->arrays)
    for (const auto& params : list)
      for (auto& problem : params.structured_problems()) out.push_back(std::move(problem));
  // In file and line order, as a user fixes them; problems without a line keep their place
  // after those of their file.
  auto location = [](const sdk::ParamProblem& problem) {
    const Origin& at = problem.origin;
    return std::make_pair(at.line > 0 ? at.file : std::string("\xff"), at.line);
  };
  std::stable_sort(out.begin(), out.end(), [&](const sdk::ParamProblem& a, const sdk::ParamProblem& b) {
    return location(a) < location(b);
  });
  return out;
}

std::vector<std::string> Config::problems() const {
  std::vector<std::string> out;
  for (const auto& problem : structured_problems()) out.push_back(problem.text());
  return out;
}

void Config::check() const {
  auto all = structured_problems();
  if (!all.empty()) throw problems_error(path_, std::move(all));
}

sdk::ParamsError problems_error(const std::filesystem::path& file, std::vector<sdk::ParamProblem> problems) {
  std::string message = std::to_string(problems.size()) + (problems.size() == 1 ? " problem" : " problems") + " in " +
                        file.string() + ":";
  for (const auto& problem : problems) message += "\n  " + problem.text();
  return sdk::ParamsError(message, std::move(problems));
}

namespace {

// Makes each value of `table` that `params` read as a path absolute, against the folder of
// the file that wrote it: a base config's `root = "../data"` keeps meaning its own folder's
// neighbour once the merged text is saved somewhere else.
void absolutize_paths(Table& table, const ParamTable& params) {
  for (const auto& [key, spec] : params.specs()) {
    if (spec.type != "path" && spec.type != "path or list of paths") continue;
    auto it = table.values.find(key);
    if (it == table.values.end()) continue;
    // As get_path() reads it: relative to the folder of the file that set it, or to the
    // working directory for a bare file name and for the command line.
    const fs::path folder = fs::path(it->second.origin.file).parent_path();
    const fs::path base = folder.empty() ? fs::current_path() : fs::absolute(folder);
    auto resolve = [&](std::string& text) {
      if (!text.empty() && fs::path(text).is_relative()) text = (base / text).lexically_normal().string();
    };
    if (auto* text = std::get_if<std::string>(&it->second.value)) resolve(*text);
    if (auto* list = std::get_if<std::vector<sdk::Scalar>>(&it->second.value))
      for (auto& item : *list)
        if (auto* text = std::get_if<std::string>(&item)) resolve(*text);
  }
}

Table* find_table(Table& root, const std::string& name) {
  return const_cast<Table*>(find_table(static_cast<const Table&>(root), name));
}

}  // namespace

namespace {

// The merged tree as resolved_toml() and settings() give it: with Paths::absolute, each value
// a reader took as a path made absolute.
Table resolved_tree(const Table& merged, const std::map<std::string, ParamTable>& tables,
                    const std::map<std::string, std::vector<ParamTable>>& arrays, Config::Paths paths) {
  Table root = merged;
  if (paths != Config::Paths::absolute) return root;
  for (const auto& [name, params] : tables)
    if (Table* table = find_table(root, name)) absolutize_paths(*table, params);
  for (const auto& [name, list] : arrays) {
    const auto dot = name.rfind('.');
    Table* parent = find_table(root, dot == std::string::npos ? "" : name.substr(0, dot));
    if (!parent) continue;
    auto found = parent->arrays.find(dot == std::string::npos ? name : name.substr(dot + 1));
    if (found == parent->arrays.end()) continue;
    for (size_t i = 0; i < list.size() && i < found->second.size(); ++i) absolutize_paths(found->second[i], list[i]);
  }
  return root;
}

void flatten(const Table& table, const std::string& prefix, std::vector<Config::Setting>& out) {
  for (const auto& [key, entry] : table.values) out.push_back({join(prefix, key), entry.value, entry.origin});
  for (const auto& [key, child] : table.tables) flatten(child, join(prefix, key), out);
  for (const auto& [key, list] : table.arrays)
    for (size_t i = 0; i < list.size(); ++i) flatten(list[i], join(prefix, key) + "." + std::to_string(i), out);
}

}  // namespace

std::string Config::resolved_toml(Paths paths) const {
  toml::table out;
  to_toml(resolved_tree(impl_->root, impl_->tables, impl_->arrays, paths), out);
  // A study config (one with [tune]) is run by `bachlab tune`, every other by `bachlab run`.
  return std::string("# Fully resolved config (every `extends` and command-line override merged); runs as is with ") +
         (out.contains("tune") ? "`bachlab tune`" : "`bachlab run`") + ".\n" + toml_text(out);
}

std::vector<Config::Setting> Config::settings(Paths paths) const {
  std::vector<Setting> out;
  flatten(resolved_tree(impl_->root, impl_->tables, impl_->arrays, paths), "", out);
  return out;
}

}  // namespace bachlab::host
