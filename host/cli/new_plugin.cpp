// The folder writer of `bachlab new-plugin` (see new_plugin.h); the command itself is in
// new_plugin_command.cpp, so that tests link this without the CLI.
#include "host/cli/new_plugin.h"

#include "host/util/atomic_file.h"
#include "host/util/process.h"

#include <bachlab/sdk/error.h>
#include <bachlab/sdk/param_table.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

namespace bachlab::cli {

namespace fs = std::filesystem;

namespace {

const std::vector<std::string>& plugin_kinds() {
  static const std::vector<std::string> kinds{"model", "augmentation", "optimizer", "tuner"};
  return kinds;
}

void replace_all(std::string& text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
}

// The regular files of a template folder, sorted so the output does not depend on the
// order the file system lists them in.
std::vector<fs::path> template_files(const fs::path& folder) {
  std::error_code ec;
  if (!fs::is_directory(folder, ec))
    throw Error(folder.string() + ": plugin template folder is missing; reinstall bachlab (cmake --install)");
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(folder))
    if (entry.is_regular_file()) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

Error already_exists(const fs::path& target) {
  return Error(target.string() + ": already exists; new-plugin never overwrites, so choose another NAME or --dir");
}

// Removes the half-written temporary folder unless the rename into place happened.
struct TempFolder {
  fs::path path;
  bool kept = false;
  ~TempFolder() {
    std::error_code ec;
    if (!kept) fs::remove_all(path, ec);
  }
};

}  // namespace

fs::path plugin_templates_dir() {
  std::error_code ec;
  const fs::path exe_dir = host::program_file(ec).parent_path();
  // The plugin folder beside the program marks a build tree (as in default_plugin_dir()):
  // it reads the source tree's templates, so edits to them need no install. An installed
  // program reads only its own, so an install that lacks them fails here, not silently.
  const fs::path dir = fs::is_directory(exe_dir / "plugins", ec) ? fs::path(BACHLAB_SOURCE_TEMPLATE_DIR)
                                                                 : exe_dir / BACHLAB_INSTALL_TEMPLATE_DIR_FROM_BIN;
  if (!fs::is_directory(dir, ec))
    throw Error(dir.lexically_normal().string() +
                ": plugin templates folder is missing; reinstall bachlab (cmake --install)");
  return dir.lexically_normal();
}

void check_new_plugin_args(const std::string& kind, const std::string& name) {
  const auto& kinds = plugin_kinds();
  if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end()) {
    const std::string hint = sdk::closest_match(kind, kinds);
    throw Error("unknown plugin kind \"" + kind + "\"" + (hint.empty() ? "" : "; did you mean \"" + hint + "\"?") +
                " (kinds: model, augmentation, optimizer, tuner)");
  }
  const bool valid = !name.empty() && name.size() <= 64 && name[0] >= 'a' && name[0] <= 'z' &&
                     std::all_of(name.begin(), name.end(), [](char c) {
                       return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
                     });
  if (!valid)
    throw Error("plugin name \"" + name +
                "\" is not valid: it must start with a lowercase letter and have only lowercase letters, digits "
                "and _, at most 64 characters (it names the source file, the CMake target and the .so)");
}

fs::path write_new_plugin(const std::string& kind, const std::string& name, const fs::path& parent,
                          const fs::path& templates) {
  check_new_plugin_args(kind, name);
  const fs::path target = parent / name;
  std::error_code ec;
  if (fs::exists(fs::symlink_status(target, ec)))
    throw already_exists(target);
  const std::vector<fs::path> common = template_files(templates / "common");
  const std::vector<fs::path> own = template_files(templates / kind);
  const fs::path usage_file = templates / kind / "usage.md";
  const std::string usage = host::read_file(usage_file);

  fs::create_directories(parent, ec);
  if (ec) throw Error(parent.string() + ": cannot create the folder (" + ec.message() + ")");
  TempFolder temp{parent / ("." + name + ".new-plugin." + std::to_string(getpid()) + ".tmp")};
  fs::create_directory(temp.path, ec);
  if (ec) throw Error(temp.path.string() + ": cannot create the folder (" + ec.message() + ")");

  std::vector<fs::path> files = common;
  for (const auto& file : own)
    if (file != usage_file) files.push_back(file);
  for (const auto& file : files) {
    std::string text = host::read_file(file);
    replace_all(text, "@USAGE@", usage);  // first: the usage text holds @NAME@ itself
    replace_all(text, "@NAME@", name);
    replace_all(text, "@KIND@", kind);
    std::string file_name = file.filename().string();
    replace_all(file_name, "NAME", name);
    host::write_file_atomic(temp.path / file_name, text);
  }
  // RENAME_NOREPLACE: a folder that appeared since the check above is never replaced.
  if (::renameat2(AT_FDCWD, temp.path.c_str(), AT_FDCWD, target.c_str(), RENAME_NOREPLACE) != 0) {
    if (errno == EEXIST)
      throw already_exists(target);
    throw Error(target.string() + ": cannot move the new folder into place (" + std::strerror(errno) + ")");
  }
  temp.kept = true;
  return target;
}

}  // namespace bachlab::cli
