#include <bachlab/sdk/testing.h>

#include <bachlab/sdk/error.h>

#include <dlfcn.h>

namespace bachlab::sdk::testing {

const bachlab_descriptor& load_descriptor(const std::string& file, const std::string& kind) {
  void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) throw Error(file + ": cannot load the plugin: " + dlerror());
  auto entry = reinterpret_cast<bachlab_plugin_entry>(dlsym(handle, BACHLAB_PLUGIN_ENTRY_NAME));
  if (!entry)
    throw Error(file + ": no " BACHLAB_PLUGIN_ENTRY_NAME " symbol; the plugin needs one BACHLAB_PLUGIN(...) line");
  const bachlab_descriptor* descriptor = entry();
  if (const std::string problem = descriptor_problem(descriptor, kind); !problem.empty())
    throw Error(file + ": " + problem);
  return *descriptor;
}

}  // namespace bachlab::sdk::testing
