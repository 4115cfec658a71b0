#pragma once
// Finds plugin libraries, checks their descriptors, and creates objects from them. Every
// object handed out keeps its library loaded for as long as it lives, so the order in
// which plugins and objects are released can never unload code that is still in use.

#include <bachlab/sdk/param_table.h>
#include <bachlab/sdk/augmentation.h>
#include <bachlab/sdk/model.h>
#include <bachlab/sdk/optimizer.h>
#include <bachlab/sdk/plugin.h>
#include <bachlab/sdk/tuner.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace boost::dll {
class shared_library;
}

namespace bachlab::host {

/// What `bachlab plugins` shows for one accepted plugin.
struct PluginInfo {
  std::string kind;
  std::string name;
  std::string version;
  std::string description;
  std::string abi;            ///< "major.minor" the plugin was built for.
  std::string torch_version;  ///< LibTorch it was built against.
  std::filesystem::path path;
};

/// A file that looked like a plugin and was not accepted, with the reason.
struct Rejection {
  std::filesystem::path path;
  std::string reason;  ///< A complete sentence naming the file, what was expected and found.
};

/// The folders to search, in order: the build's (or install's) plugin folder next to the
/// executable, then `config_paths`, then each entry of BACHLAB_PLUGIN_PATH (':'-separated).
/// Never the working directory unless a config or the environment names it.
std::vector<std::filesystem::path> plugin_search_path(const std::vector<std::filesystem::path>& config_paths);

/// The plugin folder next to the running executable: <exe dir>/plugins in a build tree,
/// <exe dir>/../lib/bachlab/plugins when installed; empty if neither exists.
std::filesystem::path default_plugin_dir();

class PluginRegistry {
 public:
  PluginRegistry();
  ~PluginRegistry();
  PluginRegistry(PluginRegistry&&) noexcept;
  PluginRegistry& operator=(PluginRegistry&&) noexcept;

  /// Loads every *.so in each folder (non-recursive). A folder that does not exist is
  /// recorded as a rejection; so is every file that is not a valid plugin. A name already
  /// taken within its kind by an earlier folder is rejected as shadowed.
  void scan(const std::vector<std::filesystem::path>& folders);

  /// Loads one file; returns false (and records a rejection) if it is not accepted.
  bool load(const std::filesystem::path& file);

  /// Accepted plugins, sorted by kind then name.
  std::vector<PluginInfo> plugins() const;
  /// Rejected files in the order they were met.
  const std::vector<Rejection>& rejections() const { return rejections_; }
  /// The folders scanned so far.
  const std::vector<std::filesystem::path>& folders() const { return folders_; }
  /// Plugin folders and accepted files that every user may write (so anyone could make
  /// bachlab run their code), one sentence each. They are loaded all the same;
  /// `bachlab plugins` lists these.
  const std::vector<std::string>& warnings() const { return warnings_; }

  /// True if a plugin of `kind` named `name` was accepted.
  bool has(const std::string& kind, const std::string& name) const;
  /// Info of an accepted plugin; throws Error naming the kind, name, close matches and
  /// the folders searched if there is none.
  const PluginInfo& find(const std::string& kind, const std::string& name) const;
  /// What find() says of a `kind` plugin named `name` that is not there, after the name:
  /// "; did you mean ...?; available: ... (searched: ...)".
  std::string unknown_plugin_hint(const std::string& kind, const std::string& name) const;

  /// Creates a network. Problems in `params` and errors thrown by the plugin come back as
  /// bachlab::Error with the plugin's own message.
  std::shared_ptr<sdk::Network> create_model(const std::string& name, const sdk::ModelSpec& spec,
                                             sdk::ParamTable& params) const;
  std::shared_ptr<sdk::Augmentation> create_augmentation(const std::string& name, sdk::ParamTable& params) const;
  std::shared_ptr<torch::optim::Optimizer> create_optimizer(const std::string& name,
                                                            const std::vector<sdk::ParameterGroup>& groups,
                                                            sdk::ParamTable& params) const;
  std::shared_ptr<sdk::Tuner> create_tuner(const std::string& name, const sdk::SearchSpace& space,
                                           const sdk::StudySettings& settings, sdk::ParamTable& params) const;

 private:
  struct Entry;
  const Entry& entry(const std::string& kind, const std::string& name) const;

  std::vector<Entry> entries_;
  std::vector<Rejection> rejections_;
  std::vector<std::filesystem::path> folders_;
  std::vector<std::string> warnings_;
};

/// The text of `bachlab plugins`: a table of accepted plugins (of `kind`, or all if
/// empty), then the rejected files with their reasons, then the folders searched.
std::string format_plugin_listing(const PluginRegistry& registry, const std::string& kind = "");

/// The host's own versions, for `bachlab --version` and for checking descriptors.
std::string host_abi_version();    ///< "major.minor", e.g. "2.0"
std::string host_torch_version();  ///< TORCH_VERSION the host was built with.

}  // namespace bachlab::host
