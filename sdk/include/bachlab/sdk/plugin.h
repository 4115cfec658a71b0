#pragma once
/// \file plugin.h
/// The plugin ABI. Every plugin is a shared library exporting one plain C function,
/// `bachlab_plugin_descriptor`, that returns a descriptor. The host reads and checks the
/// descriptor (ABI version, kind, LibTorch version) before it touches any C++ object of
/// the plugin; only then does it use `factory`, the plugin's C++ interface for its kind.
///
/// A plugin registers with exactly one macro, in one .cpp file:
/// \code
///   BACHLAB_PLUGIN(optimizer, "adam", "1.0.0", "Adam (Kingma & Ba, 2015)", AdamPlugin)
/// \endcode

#include <cstdint>
#include <string>
#include <type_traits>

#include <torch/version.h>

/// The ABI major version: the host rejects a plugin whose major differs. 4: Network's four
/// feature-cache virtuals (has_frozen_features, extract_features, head,
/// features_cache_key) became one optional interface, FrozenFeatures, returned by
/// Network::frozen_features(); ParamTable records structured problems (ParamProblem) and
/// its check() throws ParamsError; the layer builders and transfer-learning blocks left
/// the SDK for the in-tree plugins' own library (plugins/models/common). 3: Params is an
/// interface whose object lives in libbachlab_sdk.so, the SDK's code is compiled into that
/// library, and the descriptor records the C++ standard library and compiler (2: Params
/// was a class of the headers, its layout compiled into every plugin).
#define BACHLAB_ABI_MAJOR 4
/// The ABI minor version: the host rejects a plugin built for a newer minor than its own
/// (it may use interfaces the host does not have) and accepts older ones.
#define BACHLAB_ABI_MINOR 0

#define BACHLAB_STRINGIFY_(x) #x
#define BACHLAB_STRINGIFY(x) BACHLAB_STRINGIFY_(x)

/// The C++ standard library and its ABI, which every std::string and std::vector crossing
/// the boundary depends on: GCC and Clang share the Itanium C++ ABI, but libstdc++'s two
/// string ABIs (_GLIBCXX_USE_CXX11_ABI) and libc++ lay these types out differently.
#if defined(_LIBCPP_VERSION)
#define BACHLAB_CXX_ABI "libc++ ABI " BACHLAB_STRINGIFY(_LIBCPP_ABI_VERSION)
#elif defined(__GLIBCXX__) && _GLIBCXX_USE_CXX11_ABI
#define BACHLAB_CXX_ABI "libstdc++ _GLIBCXX_USE_CXX11_ABI=1"
#elif defined(__GLIBCXX__)
#define BACHLAB_CXX_ABI "libstdc++ _GLIBCXX_USE_CXX11_ABI=0"
#else
#define BACHLAB_CXX_ABI "an unknown C++ standard library"
#endif

/// The compiler, named in the message when the standard libraries differ.
#if defined(__clang__)
#define BACHLAB_COMPILER "Clang " __clang_version__
#elif defined(__GNUC__)
#define BACHLAB_COMPILER "GCC " __VERSION__
#else
#define BACHLAB_COMPILER "an unknown compiler"
#endif

/// The C symbol every plugin exports.
#define BACHLAB_PLUGIN_ENTRY_NAME "bachlab_plugin_descriptor"

extern "C" {

/// What a plugin says about itself. Fields are only ever appended; `struct_size` lets a
/// host tell an older, shorter descriptor from a newer one.
struct bachlab_descriptor {
  /// sizeof(bachlab_descriptor) as the plugin was compiled.
  uint32_t struct_size;
  /// BACHLAB_ABI_MAJOR as the plugin was compiled.
  uint32_t abi_major;
  /// BACHLAB_ABI_MINOR as the plugin was compiled.
  uint32_t abi_minor;
  /// "model", "augmentation", "optimizer" or "tuner".
  const char* kind;
  /// Unique name within its kind, as configs refer to it (e.g. "model4a").
  const char* name;
  /// The plugin's own version, e.g. "1.0.0".
  const char* version;
  /// One line for `bachlab plugins`.
  const char* description;
  /// TORCH_VERSION the plugin was compiled against; must equal the host's.
  const char* torch_version;
  /// The kind's C++ interface (bachlab::sdk::ModelPlugin, ...). Only used after the
  /// checks above and below pass.
  const void* factory;
  /// BACHLAB_CXX_ABI as the plugin was compiled; must equal the host's. (ABI 3.0)
  const char* cxx_abi;
  /// BACHLAB_COMPILER as the plugin was compiled. (ABI 3.0)
  const char* compiler;
};

/// Signature of the exported entry point. It never throws and returns null on failure.
typedef const bachlab_descriptor* (*bachlab_plugin_entry)(void);
}

#if defined(_WIN32)
#define BACHLAB_PLUGIN_EXPORT __declspec(dllexport)
#else
#define BACHLAB_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

namespace bachlab::sdk {

/// Why a host must not use the plugin whose entry point returned `descriptor` (null, too
/// short, another ABI major or a newer minor, an unknown kind or not `expected_kind`,
/// another LibTorch, another C++ standard library, no name or factory), phrased to follow
/// "<file>: " and ending with the fix; "" when it may. The one check of a descriptor: the
/// host's registry and testing.h both make it.
std::string descriptor_problem(const bachlab_descriptor* descriptor, const std::string& expected_kind = "");

/// Maps a kind word in BACHLAB_PLUGIN to the interface the factory must implement. Each
/// kind header adds its specialisation.
template <typename Tag>
struct KindInterface;
namespace kind_tags {
struct model;
struct augmentation;
struct optimizer;
struct tuner;
}  // namespace kind_tags
}  // namespace bachlab::sdk

/// Declares the plugin: KIND is one of model, augmentation, optimizer, tuner; FACTORY is a
/// default-constructible class implementing that kind's interface.
#define BACHLAB_PLUGIN(KIND, NAME, VERSION, DESCRIPTION, FACTORY)                             \
  static_assert(std::is_base_of_v<                                                            \
                    ::bachlab::sdk::KindInterface<::bachlab::sdk::kind_tags::KIND>::type, FACTORY>, \
                "BACHLAB_PLUGIN: " #FACTORY " must derive from the interface of kind " #KIND);   \
  extern "C" BACHLAB_PLUGIN_EXPORT const bachlab_descriptor* bachlab_plugin_descriptor()  \
      noexcept {                                                                              \
    try {                                                                                     \
      static const FACTORY factory;                                                           \
      static const bachlab_descriptor descriptor = {                                   \
          sizeof(bachlab_descriptor), BACHLAB_ABI_MAJOR, BACHLAB_ABI_MINOR, #KIND,   \
          NAME, VERSION, DESCRIPTION, TORCH_VERSION,                                          \
          static_cast<const ::bachlab::sdk::KindInterface<                                    \
              ::bachlab::sdk::kind_tags::KIND>::type*>(&factory),                             \
          BACHLAB_CXX_ABI, BACHLAB_COMPILER};                                                 \
      return &descriptor;                                                                     \
    } catch (...) {                                                                           \
      return nullptr;                                                                         \
    }                                                                                         \
  }
