#pragma once
// Editing a config's TOML tree before it is written out as another config: a tuning
// trial's experiment is the study config with the trial's values written over it, saved
// in another folder, so its relative paths must stop depending on where it is saved.

#include "host/config/config.h"

#include <bachlab/sdk/value.h>

#include <toml++/toml.h>

#include <set>
#include <string>

namespace bachlab::host {

/// Sets `name` ("table.key", dots separating the tables) to `value` in `root`, creating
/// the tables on the way.
void set_dotted(toml::table& root, const std::string& name, const sdk::Scalar& value);

/// Which settings of a config are paths, so make_paths_absolute() knows what to resolve.
struct PathSettings {
  /// "table.key" of string settings that are paths whether or not they exist yet.
  std::set<std::string> paths;
  /// "table.key" of lists of paths (relative to the config's own folder).
  std::set<std::string> path_lists;
};

/// Makes the relative paths of `root`, the merged tree of `config`, absolute: each against
/// the folder of the file that wrote it (a base config's "../data" keeps meaning its own
/// folder's neighbour). A string that is not one of `settings.paths` is treated as a path
/// only if it names a file or folder that exists (a plugin's weights file).
void make_paths_absolute(Config& config, toml::table& root, const PathSettings& settings);

}  // namespace bachlab::host
