#pragma once
// `bachlab new-plugin KIND NAME`: a ready-to-build plugin folder from the SDK's templates
// (sdk/templates/common and sdk/templates/<kind>, installed to share/bachlab/templates).

#include <filesystem>
#include <string>

namespace bachlab::cli {

/// The templates folder: the source tree's sdk/templates for a build-tree program,
/// share/bachlab/templates of the install for an installed one. Throws Error naming the
/// folder if it is missing.
std::filesystem::path plugin_templates_dir();

/// Throws Error unless `kind` is model, augmentation, optimizer or tuner and `name` is a
/// lowercase C identifier (it becomes a file name, a CMake target and a C++ string).
void check_new_plugin_args(const std::string& kind, const std::string& name);

/// Writes the folder `parent / name` from `templates`: common/* and <kind>/* with @NAME@
/// and @KIND@ replaced (NAME in file names too) and the kind's usage.md inserted at @USAGE@.
/// Everything is written into a temporary folder beside it that is renamed into place only
/// when complete, and never over an existing path: on any error nothing is left behind.
/// Returns the new folder.
std::filesystem::path write_new_plugin(const std::string& kind, const std::string& name,
                                       const std::filesystem::path& parent, const std::filesystem::path& templates);

}  // namespace bachlab::cli
