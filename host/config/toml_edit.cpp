#include "host/config/toml_edit.h"

#include <filesystem>
#include <sstream>
#include <variant>
#include <vector>

namespace bachlab::host {

namespace fs = std::filesystem;

void set_dotted(toml::table& root, const std::string& name, const sdk::Scalar& value) {
  toml::table* table = &root;
  std::stringstream parts(name);
  std::vector<std::string> keys;
  for (std::string part; std::getline(parts, part, '.');) keys.push_back(part);
  for (size_t i = 0; i + 1 < keys.size(); ++i) {
    auto* child = table->get_as<toml::table>(keys[i]);
    if (!child) child = table->insert_or_assign(keys[i], toml::table{}).first->second.as_table();
    table = child;
  }
  std::visit([&](auto&& v) { table->insert_or_assign(keys.back(), v); }, value);
}

namespace {

void make_table_paths_absolute(Config& config, toml::table& table, const std::string& name,
                               const PathSettings& settings) {
  for (auto&& [key, node] : table) {
    const std::string k(key.str());
    const std::string full = name.empty() ? k : name + "." + k;
    if (auto* child = node.as_table()) {
      make_table_paths_absolute(config, *child, full, settings);
      continue;
    }
    if (name.empty()) continue;
    if (auto* text = node.as_string()) {
      const std::string value = text->get();
      if (value.empty() || fs::path(value).is_absolute()) continue;
      sdk::ParamTable copy = config.table(name);  // a copy: resolving must not mark keys as read
      const fs::path resolved = copy.get_path(k, "");
      const bool known_path = settings.paths.count(full) > 0;
      if (resolved.empty() || resolved == fs::path(value)) {
        // No folder part in the origin: the config sat in the working directory.
        if (!known_path && !fs::exists(value)) continue;
      } else if (!known_path && !fs::exists(resolved)) {
        continue;
      }
      *text = fs::absolute(resolved.empty() ? fs::path(value) : resolved).lexically_normal().string();
    } else if (auto* list = node.as_array(); list && settings.path_lists.count(full)) {
      const fs::path base = fs::absolute(config.path()).parent_path();
      for (auto&& element : *list)
        if (auto* text = element.as_string(); text && !fs::path(text->get()).is_absolute())
          *text = (base / text->get()).lexically_normal().string();
    }
  }
}

}  // namespace

void make_paths_absolute(Config& config, toml::table& root, const PathSettings& settings) {
  make_table_paths_absolute(config, root, "", settings);
}

}  // namespace bachlab::host
