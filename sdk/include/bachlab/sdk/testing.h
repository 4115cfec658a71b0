#pragma once
/// \file testing.h
/// For a plugin's own tests: opens the built plugin file the way the host does (the C
/// entry point first, then the kind's C++ interface), so a test exercises the very .so the
/// host will load, including its BACHLAB_PLUGIN line, under the host's own descriptor
/// checks (sdk::descriptor_problem). POSIX (dlopen) only, like the host.
///
/// \code
///   const auto& plugin = bachlab::sdk::testing::load_plugin<bachlab::sdk::ModelPlugin>(PLUGIN_FILE, "model");
///   bachlab::sdk::ParamTable params("[model]");
///   auto net = plugin.create(bachlab::sdk::ModelSpec{}, params);
/// \endcode

#include <bachlab/sdk/plugin.h>

#include <string>

namespace bachlab::sdk::testing {

/// The descriptor of the plugin in `file`, after every check the host makes (entry point
/// present, then descriptor_problem() with `kind` expected). The library is never closed:
/// objects a test creates may outlive any scope, and their code must stay loaded until
/// exit. Throws bachlab::Error naming the file, what was expected and what was found.
const bachlab_descriptor& load_descriptor(const std::string& file, const std::string& kind);

/// The factory (ModelPlugin, AugmentationPlugin, OptimizerPlugin or TunerPlugin) of the
/// plugin in `file`, checked as load_descriptor() does.
template <typename Interface>
const Interface& load_plugin(const std::string& file, const std::string& kind) {
  return *static_cast<const Interface*>(load_descriptor(file, kind).factory);
}

}  // namespace bachlab::sdk::testing
