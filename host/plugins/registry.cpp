#include "host/plugins/registry.h"

#include "host/util/process.h"

#include <bachlab/sdk/param_table.h>
#include <fmt/format.h>
#include <boost/dll/shared_library.hpp>
#include <dlfcn.h>
#include <link.h>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <sstream>

namespace bachlab::host {

namespace fs = std::filesystem;
using Library = boost::dll::shared_library;

struct PluginRegistry::Entry {
  PluginInfo info;
  std::shared_ptr<Library> library;
  const void* factory = nullptr;
};

std::string host_abi_version() {
  return std::to_string(BACHLAB_ABI_MAJOR) + "." + std::to_string(BACHLAB_ABI_MINOR);
}

std::string host_torch_version() { return TORCH_VERSION; }

fs::path default_plugin_dir() {
  std::error_code ec;
  fs::path exe_dir = program_file(ec).parent_path();
  if (ec) return {};
  for (const fs::path& candidate : {exe_dir / "plugins", exe_dir / ".." / "lib" / "bachlab" / "plugins"}) {
    if (fs::is_directory(candidate, ec)) return fs::weakly_canonical(candidate, ec);
  }
  return {};
}

std::vector<fs::path> plugin_search_path(const std::vector<fs::path>& config_paths) {
  std::vector<fs::path> out;
  if (fs::path builtin = default_plugin_dir(); !builtin.empty()) out.push_back(builtin);
  out.insert(out.end(), config_paths.begin(), config_paths.end());
  if (const char* env = std::getenv("BACHLAB_PLUGIN_PATH")) {
    std::stringstream stream(env);
    std::string item;
    // Empty entries are skipped: "a::b" must not mean the working directory.
    while (std::getline(stream, item, ':'))
      if (!item.empty()) out.emplace_back(item);
  }
  return out;
}

namespace {

// A warning if every user may write `path` (a world-writable folder lets anyone add a .so;
// a world-writable file lets anyone replace its code), else "".
std::string world_writable(const fs::path& path, const char* what) {
  std::error_code ec;
  const auto permissions = fs::status(path, ec).permissions();
  if (ec || (permissions & fs::perms::others_write) == fs::perms::none) return "";
  return fmt::format("{}: this plugin {} is writable by every user, who could make bachlab run their code; remove "
                     "that permission (chmod o-w)",
                     path.string(), what);
}

// "" if the library's entry point is a function; otherwise what the dynamic symbol table
// says it is ("data (64 bytes)", ...).
std::string entry_point_kind(Library& library) {
  void* address = dlsym(library.native(), BACHLAB_PLUGIN_ENTRY_NAME);
  Dl_info info{};
  ElfW(Sym)* symbol = nullptr;
  if (!address || !dladdr1(address, &info, reinterpret_cast<void**>(&symbol), RTLD_DL_SYMENT) || !symbol)
    return "a symbol the loader cannot describe";
  // ELF32_ST_TYPE and ELF64_ST_TYPE are the same: the low four bits of st_info.
  const unsigned type = ELF64_ST_TYPE(symbol->st_info);
  switch (type) {
    case STT_FUNC:
    case STT_GNU_IFUNC: return "";
    case STT_OBJECT: return fmt::format("data ({} bytes)", symbol->st_size);
    case STT_TLS: return "thread-local data";
    default: return fmt::format("a symbol of ELF type {}", type);
  }
}

}  // namespace

PluginRegistry::PluginRegistry() = default;
PluginRegistry::~PluginRegistry() = default;
PluginRegistry::PluginRegistry(PluginRegistry&&) noexcept = default;
PluginRegistry& PluginRegistry::operator=(PluginRegistry&&) noexcept = default;

void PluginRegistry::scan(const std::vector<fs::path>& folders) {
  for (const auto& folder : folders) {
    folders_.push_back(folder);
    std::error_code ec;
    if (!fs::is_directory(folder, ec)) {
      rejections_.push_back({folder, folder.string() + ": plugin folder does not exist or is not a folder"});
      continue;
    }
    std::vector<fs::path> files;
    for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().extension() == ".so" && !it->is_directory()) files.push_back(it->path());
    }
    if (ec) {
      rejections_.push_back({folder, folder.string() + ": cannot list plugin folder: " + ec.message()});
      continue;
    }
    if (auto warning = world_writable(folder, "folder"); !warning.empty()) warnings_.push_back(warning);
    std::sort(files.begin(), files.end());
    for (const auto& file : files) load(file);
  }
}

bool PluginRegistry::load(const fs::path& file) {
  const std::string where = file.string() + ": ";
  auto reject = [&](const std::string& reason) {
    rejections_.push_back({file, where + reason});
    return false;
  };

  std::error_code ec;
  if (fs::is_regular_file(file, ec) && fs::file_size(file, ec) == 0)
    return reject("empty file (0 bytes); expected a shared library built with BACHLAB_PLUGIN");

  dlerror();  // clear any stale message so the one read below is this load's
  auto library = std::make_shared<Library>();
  library->load(file, ec, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  if (ec) {
    const char* error_text = dlerror();
    std::string detail = error_text ? error_text : ec.message();
    // dlerror() repeats the path; the message already starts with it.
    if (detail.rfind(where, 0) == 0) detail.erase(0, where.size());
    return reject("not a loadable shared library: " + detail);
  }
  if (!library->has(BACHLAB_PLUGIN_ENTRY_NAME))
    return reject("no entry point \"" BACHLAB_PLUGIN_ENTRY_NAME
                  "\"; expected a library built with BACHLAB_PLUGIN");

  // Calling a symbol that is not code (a library exporting data under the entry point's
  // name) jumps into data and crashes every command; the ELF symbol table says what it is.
  if (std::string what = entry_point_kind(*library); !what.empty())
    return reject("\"" BACHLAB_PLUGIN_ENTRY_NAME "\" is " + what +
                  ", not a function; expected a library built with BACHLAB_PLUGIN");

  // The entry point is a C function declared noexcept; it is the only call made before
  // the descriptor is checked.
  auto entry_point = library->get<const bachlab_descriptor*()>(BACHLAB_PLUGIN_ENTRY_NAME);
  const bachlab_descriptor* d = entry_point();
  if (std::string problem = sdk::descriptor_problem(d); !problem.empty()) return reject(problem);
  const std::string kind = d->kind, name = d->name;
  const std::string plugin_abi = std::to_string(d->abi_major) + "." + std::to_string(d->abi_minor);

  for (const auto& existing : entries_) {
    if (existing.info.kind == kind && existing.info.name == name)
      return reject(kind + " plugin \"" + name + "\" is already provided by " + existing.info.path.string() +
                    "; this one is ignored");
  }

  if (auto warning = world_writable(file, "file"); !warning.empty()) warnings_.push_back(warning);
  Entry entry;
  entry.info = {kind,        name, d->version ? d->version : "", d->description ? d->description : "",
                plugin_abi, d->torch_version, file};
  entry.library = std::move(library);
  entry.factory = d->factory;
  entries_.push_back(std::move(entry));
  return true;
}

std::vector<PluginInfo> PluginRegistry::plugins() const {
  std::vector<PluginInfo> out;
  for (const auto& e : entries_) out.push_back(e.info);
  std::sort(out.begin(), out.end(), [](const PluginInfo& a, const PluginInfo& b) {
    return std::tie(a.kind, a.name) < std::tie(b.kind, b.name);
  });
  return out;
}

bool PluginRegistry::has(const std::string& kind, const std::string& name) const {
  return std::any_of(entries_.begin(), entries_.end(),
                     [&](const Entry& e) { return e.info.kind == kind && e.info.name == name; });
}

const PluginInfo& PluginRegistry::find(const std::string& kind, const std::string& name) const {
  return entry(kind, name).info;
}

const PluginRegistry::Entry& PluginRegistry::entry(const std::string& kind, const std::string& name) const {
  for (const auto& e : entries_)
    if (e.info.kind == kind && e.info.name == name) return e;
  throw Error("no " + kind + " plugin named \"" + name + "\"" + unknown_plugin_hint(kind, name));
}

std::string PluginRegistry::unknown_plugin_hint(const std::string& kind, const std::string& name) const {
  std::vector<std::string> names;
  for (const auto& e : entries_)
    if (e.info.kind == kind) names.push_back(e.info.name);
  std::string message;
  if (std::string hint = sdk::closest_match(name, names); !hint.empty()) message += "; did you mean \"" + hint + "\"?";
  std::sort(names.begin(), names.end());
  std::string available;
  for (const auto& n : names) available += (available.empty() ? "" : ", ") + n;
  message += available.empty() ? "; no " + kind + " plugins were found" : "; available: " + available;
  std::string searched;
  for (const auto& f : folders_) searched += (searched.empty() ? "" : ", ") + f.string();
  message += " (searched: " + (searched.empty() ? std::string("no folders") : searched) + ")";
  return message;
}

std::string format_plugin_listing(const PluginRegistry& registry, const std::string& kind) {
  std::vector<PluginInfo> shown;
  for (const auto& info : registry.plugins())
    if (kind.empty() || info.kind == kind) shown.push_back(info);
  size_t kind_w = 4, name_w = 4, version_w = 7, description_w = 11;
  for (const auto& p : shown) {
    kind_w = std::max(kind_w, p.kind.size());
    name_w = std::max(name_w, p.name.size());
    version_w = std::max(version_w, p.version.size());
    description_w = std::max(description_w, p.description.size());
  }
  std::string out;
  auto row = [&](const std::string& a, const std::string& b, const std::string& c, const std::string& d,
                 const std::string& e) {
    out += fmt::format("{:<{}}  {:<{}}  {:<{}}  {:<{}}  {}\n", a, kind_w, b, name_w, c, version_w, d, description_w, e);
  };
  if (shown.empty()) {
    out += kind.empty() ? "No plugins found.\n" : "No " + kind + " plugins found.\n";
  } else {
    row("KIND", "NAME", "VERSION", "DESCRIPTION", "FILE");
    for (const auto& p : shown) row(p.kind, p.name, p.version, p.description, p.path.string());
  }
  if (!registry.rejections().empty()) {
    out += fmt::format("\nRejected ({}):\n", registry.rejections().size());
    for (const auto& r : registry.rejections()) out += "  " + r.reason + "\n";
  }
  if (!registry.warnings().empty()) {
    out += fmt::format("\nWarnings ({}):\n", registry.warnings().size());
    for (const auto& w : registry.warnings()) out += "  " + w + "\n";
  }
  out += "\nSearched:";
  if (registry.folders().empty()) out += " no folders";
  for (const auto& f : registry.folders()) out += " " + f.string();
  out += "\n";
  return out;
}

namespace {

// Shares ownership of `object` with `library` so that the library outlives the object:
// the holder releases the object first, then the library.
template <typename T>
std::shared_ptr<T> keep_loaded(std::shared_ptr<Library> library, std::shared_ptr<T> object) {
  struct Holder {
    std::shared_ptr<Library> library;
    std::shared_ptr<T> object;
    ~Holder() { object.reset(); }
  };
  auto holder = std::make_shared<Holder>(Holder{std::move(library), std::move(object)});
  T* raw = holder->object.get();
  return std::shared_ptr<T>(holder, raw);
}

// Runs a plugin's factory call. bachlab::Error passes through unchanged (its message is
// already for the user); anything else is wrapped with the plugin's name and file.
template <typename Call>
auto call_plugin(const PluginInfo& info, sdk::ParamTable& params, Call&& call) {
  // The keys the factory asks for are the plugin's in the config reference; whatever way
  // the call ends, later asks of the table are the host's again.
  struct Reader {
    sdk::ParamTable& params;
    ~Reader() { params.set_reader(""); }
  } reader{params};
  params.set_reader(info.kind + " " + info.name);
  try {
    auto result = call();
    params.check();
    return result;
  } catch (const Error&) {
    // Problems recorded in params explain a failure better than what followed from them.
    params.check();
    throw;
  } catch (const c10::Error& e) {
    params.check();
    throw Error(info.kind + " plugin \"" + info.name + "\" (" + info.path.string() +
                ") failed: " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    params.check();
    throw Error(info.kind + " plugin \"" + info.name + "\" (" + info.path.string() + ") failed: " + e.what());
  }
}

}  // namespace

std::shared_ptr<sdk::Network> PluginRegistry::create_model(const std::string& name, const sdk::ModelSpec& spec,
                                                         sdk::ParamTable& params) const {
  const Entry& e = entry("model", name);
  auto factory = static_cast<const sdk::ModelPlugin*>(e.factory);
  auto network = call_plugin(e.info, params, [&] { return factory->create(spec, params); });
  if (!network) throw Error("model plugin \"" + name + "\" (" + e.info.path.string() + ") returned no network");
  return keep_loaded(e.library, std::move(network));
}

std::shared_ptr<sdk::Augmentation> PluginRegistry::create_augmentation(const std::string& name,
                                                                     sdk::ParamTable& params) const {
  const Entry& e = entry("augmentation", name);
  auto factory = static_cast<const sdk::AugmentationPlugin*>(e.factory);
  auto augmentation = call_plugin(e.info, params, [&] { return factory->create(params); });
  if (!augmentation)
    throw Error("augmentation plugin \"" + name + "\" (" + e.info.path.string() + ") returned nothing");
  return keep_loaded(e.library, std::move(augmentation));
}

std::shared_ptr<torch::optim::Optimizer> PluginRegistry::create_optimizer(
    const std::string& name, const std::vector<sdk::ParameterGroup>& groups, sdk::ParamTable& params) const {
  const Entry& e = entry("optimizer", name);
  auto factory = static_cast<const sdk::OptimizerPlugin*>(e.factory);
  std::shared_ptr<torch::optim::Optimizer> optimizer =
      call_plugin(e.info, params, [&] { return factory->create(groups, params); });
  if (!optimizer) throw Error("optimizer plugin \"" + name + "\" (" + e.info.path.string() + ") returned nothing");
  return keep_loaded(e.library, std::move(optimizer));
}

std::shared_ptr<sdk::Tuner> PluginRegistry::create_tuner(const std::string& name, const sdk::SearchSpace& space,
                                                       const sdk::StudySettings& settings,
                                                       sdk::ParamTable& params) const {
  const Entry& e = entry("tuner", name);
  auto factory = static_cast<const sdk::TunerPlugin*>(e.factory);
  std::shared_ptr<sdk::Tuner> tuner = call_plugin(e.info, params, [&] { return factory->create(space, settings, params); });
  if (!tuner) throw Error("tuner plugin \"" + name + "\" (" + e.info.path.string() + ") returned nothing");
  return keep_loaded(e.library, std::move(tuner));
}

}  // namespace bachlab::host
