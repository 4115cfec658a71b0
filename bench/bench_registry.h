#pragma once
// The build's plugins, scanned once per bench program.

#include "host/plugins/registry.h"

namespace bachlab::bench {

/// Every plugin of the build's plugin folder; never destroyed, so plugin objects held by
/// static benchmark state outlive it safely.
inline host::PluginRegistry& registry() {
  static host::PluginRegistry* r = [] {
    auto* registry = new host::PluginRegistry();
    registry->scan({BACHLAB_BENCH_PLUGIN_DIR});
    return registry;
  }();
  return *r;
}

}  // namespace bachlab::bench
