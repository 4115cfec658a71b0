# bachlab_add_plugin(NAME KIND <model|augmentation|optimizer|tuner> SOURCES src...
#                    [LIBRARIES lib...] [OUTPUT_DIRECTORY dir] [NO_INSTALL])
#
# Builds one plugin as a MODULE library named bachlab-<kind>-<name>.so. Used by every
# in-tree plugin and, through the installed CMake package, by out-of-tree plugins, so it
# relies only on the bachlab::sdk target (and the torch precompiled header if present).
function(bachlab_add_plugin name)
  cmake_parse_arguments(ARG "NO_INSTALL" "KIND;OUTPUT_DIRECTORY" "SOURCES;LIBRARIES" ${ARGN})
  set(kinds model augmentation optimizer tuner)
  if(NOT ARG_KIND IN_LIST kinds)
    message(FATAL_ERROR "bachlab_add_plugin(${name}): KIND must be one of ${kinds} (was '${ARG_KIND}')")
  endif()
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "bachlab_add_plugin(${name}): SOURCES is empty")
  endif()
  if(NOT ARG_OUTPUT_DIRECTORY)
    set(ARG_OUTPUT_DIRECTORY "${BACHLAB_PLUGIN_OUTPUT_DIR}")
  endif()

  set(target bachlab_${ARG_KIND}_${name})
  add_library(${target} MODULE ${ARG_SOURCES})
  target_link_libraries(${target} PRIVATE bachlab::sdk ${ARG_LIBRARIES})
  if(TARGET bachlab_torch_pch)
    bachlab_use_torch_pch(${target})
  endif()
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    OUTPUT_NAME "bachlab-${ARG_KIND}-${name}"
    LIBRARY_OUTPUT_DIRECTORY "${ARG_OUTPUT_DIRECTORY}"
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(NOT ARG_NO_INSTALL AND DEFINED BACHLAB_INSTALL_PLUGINDIR)
    install(TARGETS ${target} LIBRARY DESTINATION "${BACHLAB_INSTALL_PLUGINDIR}")
  endif()
endfunction()

# bachlab_use_torch_pch(TARGET): compile TARGET with the shared torch precompiled header.
# Executables are compiled -fPIC rather than -fPIE so that the header (built -fPIC for
# the plugins) is valid for them too.
function(bachlab_use_torch_pch target)
  target_precompile_headers(${target} REUSE_FROM bachlab_torch_pch)
  get_target_property(type ${target} TYPE)
  if(type STREQUAL "EXECUTABLE")
    set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE OFF)
    target_compile_options(${target} PRIVATE -fPIC)
  endif()
endfunction()
