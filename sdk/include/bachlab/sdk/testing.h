#pragma once
/// \file testing.h
/// For a plugin's own tests: opens the built plugin file the way the host does (the C
/// entry point first, then the kind's C++ interface), so a test exercises the very .so the
/// host will load, including its BACHLAB_PLUGIN line. The host's own loader is not part of
/// the SDK; this one is the few lines a test needs. POSIX (dlopen) only, like the host.
///
/// \code
///   const auto& plugin = bachlab::sdk::testing::load_plugin<bachlab::sdk::ModelPlugin>(PLUGIN_FILE, "model");
///   bachlab::sdk::Params params("[model]");
///   auto net = plugin.create(bachlab::sdk::ModelSpec{}, params);
/// \endcode

#include <bachlab/sdk/error.h>
#include <bachlab/sdk/plugin.h>

#include <dlfcn.h>

#include <cstring>
#include <string>

namespace bachlab::sdk::testing {

/// The descriptor of the plugin in `file`, after the checks the host makes first (entry
/// point present, ABI major equal, kind as expected). The library is never closed: objects
/// a test creates may outlive any scope, and their code must stay loaded until exit.
/// Throws bachlab::Error naming the file, what was expected and what was found.
inline const bachlab_descriptor& load_descriptor(const std::string& file, const std::string& kind) {
  void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) throw Error(file + ": cannot load the plugin: " + dlerror());
  auto entry = reinterpret_cast<bachlab_plugin_entry>(dlsym(handle, BACHLAB_PLUGIN_ENTRY_NAME));
  if (!entry)
    throw Error(file + ": no " BACHLAB_PLUGIN_ENTRY_NAME " symbol; the plugin needs one BACHLAB_PLUGIN(...) line");
  const bachlab_descriptor* descriptor = entry();
  if (!descriptor) throw Error(file + ": " BACHLAB_PLUGIN_ENTRY_NAME " returned null (the factory threw)");
  if (descriptor->abi_major != BACHLAB_ABI_MAJOR)
    throw Error(file + ": plugin ABI major " + std::to_string(descriptor->abi_major) + ", expected " +
                std::to_string(BACHLAB_ABI_MAJOR));
  if (kind != descriptor->kind)
    throw Error(file + ": plugin kind \"" + descriptor->kind + "\", expected \"" + kind + "\"");
  return *descriptor;
}

/// The factory (ModelPlugin, AugmentationPlugin, OptimizerPlugin or TunerPlugin) of the
/// plugin in `file`, checked as load_descriptor() does.
template <typename Interface>
const Interface& load_plugin(const std::string& file, const std::string& kind) {
  return *static_cast<const Interface*>(load_descriptor(file, kind).factory);
}

}  // namespace bachlab::sdk::testing
