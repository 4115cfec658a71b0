#include <bachlab/sdk/plugin.h>

#include <algorithm>
#include <cstddef>
#include <vector>

namespace bachlab::sdk {

namespace {

std::string text(const char* value) { return value ? value : ""; }

}  // namespace

std::string descriptor_problem(const bachlab_descriptor* d, const std::string& expected_kind) {
  if (!d) return "entry point \"" BACHLAB_PLUGIN_ENTRY_NAME "\" returned null; the plugin failed to initialise";
  // The fields up to `factory` are the same in every ABI; later ones are read only once
  // the major version says they exist.
  const size_t common = offsetof(bachlab_descriptor, factory) + sizeof(void*);
  if (d->struct_size < common)
    return "descriptor is " + std::to_string(d->struct_size) + " bytes, expected at least " + std::to_string(common) +
           "; rebuild the plugin against this SDK";

  const std::string host_abi = std::to_string(BACHLAB_ABI_MAJOR) + "." + std::to_string(BACHLAB_ABI_MINOR);
  const std::string plugin_abi = std::to_string(d->abi_major) + "." + std::to_string(d->abi_minor);
  if (d->abi_major != BACHLAB_ABI_MAJOR)
    return "plugin ABI " + plugin_abi + " does not match host ABI " + host_abi +
           " (major versions differ); rebuild the plugin against bachlab SDK " + std::to_string(BACHLAB_ABI_MAJOR) +
           ".x";
  if (d->abi_minor > BACHLAB_ABI_MINOR)
    return "plugin ABI " + plugin_abi + " is newer than host ABI " + host_abi + "; rebuild the plugin against bachlab SDK " +
           host_abi + " or update bachlab";
  if (d->struct_size < sizeof(bachlab_descriptor))
    return "descriptor is " + std::to_string(d->struct_size) + " bytes, expected " +
           std::to_string(sizeof(bachlab_descriptor)) + " for ABI " + plugin_abi + "; rebuild the plugin against this SDK";

  const std::string kind = text(d->kind);
  static const std::vector<std::string> kinds = {"model", "augmentation", "optimizer", "tuner"};
  if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end())
    return "unknown plugin kind \"" + kind + "\"; expected model, augmentation, optimizer or tuner";
  if (!expected_kind.empty() && kind != expected_kind)
    return "plugin kind \"" + kind + "\", expected \"" + expected_kind + "\"";
  const std::string torch_version = text(d->torch_version);
  if (torch_version != TORCH_VERSION)
    return "plugin built against LibTorch " + torch_version + ", host uses " + TORCH_VERSION +
           "; rebuild the plugin with the host's LibTorch";
  const std::string cxx_abi = text(d->cxx_abi);
  if (cxx_abi != BACHLAB_CXX_ABI)
    return "plugin built with " + cxx_abi + " (" + text(d->compiler) + "), host uses " + BACHLAB_CXX_ABI + " (" +
           BACHLAB_COMPILER + "); every std::string crossing between them would be misread, so rebuild the plugin "
           "with the host's standard library and ABI setting";
  if (text(d->name).empty() || !d->factory) return "descriptor has an empty name or no factory";
  return "";
}

}  // namespace bachlab::sdk
