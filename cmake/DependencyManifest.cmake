# Writes <build>/found-dependencies.txt: one absolute path a line, every file or folder that
# an imported target of a dependency resolved to (its library, its include folders, and the
# same for the targets it links). scripts/check_declared_deps.py maps each to its Debian
# package, together with CMakeCache.txt's *_DIR, *_LIBRARY and *_INCLUDE_DIR entries, and
# fails when scripts/dev.sh would not install that package on a fresh machine.

function(_bachlab_manifest_target target out_var seen_var)
  set(paths "${${out_var}}")
  set(seen "${${seen_var}}")
  if(NOT TARGET "${target}" OR "${target}" IN_LIST seen)
    return()
  endif()
  list(APPEND seen "${target}")
  get_target_property(type "${target}" TYPE)
  set(properties INTERFACE_INCLUDE_DIRECTORIES INTERFACE_LINK_LIBRARIES)
  if(NOT type STREQUAL "INTERFACE_LIBRARY")
    list(APPEND properties IMPORTED_LOCATION IMPORTED_LOCATION_RELEASE IMPORTED_LOCATION_NONE
         IMPORTED_LOCATION_NOCONFIG IMPORTED_LOCATION_RELWITHDEBINFO)
  endif()
  foreach(property ${properties})
    get_target_property(values "${target}" ${property})
    if(NOT values)
      continue()
    endif()
    foreach(value ${values})
      if(value MATCHES "^\\$<")          # generator expressions name build-time choices
        continue()
      elseif(IS_ABSOLUTE "${value}")
        list(APPEND paths "${value}")
      elseif(TARGET "${value}")
        _bachlab_manifest_target("${value}" paths seen)
      endif()
    endforeach()
  endforeach()
  set(${out_var} "${paths}" PARENT_SCOPE)
  set(${seen_var} "${seen}" PARENT_SCOPE)
endfunction()

# bachlab_record_dependencies(target... [FILES path...]): adds what these imported targets
# resolved to; call it in the folder that found them (imported targets are folder-scoped).
function(bachlab_record_dependencies)
  cmake_parse_arguments(ARG "" "" "FILES" ${ARGN})
  set(paths "")
  foreach(file ${ARG_FILES})
    if(IS_ABSOLUTE "${file}")   # lists such as TORCH_LIBRARIES mix targets and paths
      list(APPEND paths "${file}")
    endif()
  endforeach()
  set(seen "")
  foreach(target ${ARG_UNPARSED_ARGUMENTS})
    if(NOT TARGET "${target}")
      message(FATAL_ERROR "bachlab_record_dependencies: '${target}' is not a target")
    endif()
    _bachlab_manifest_target("${target}" paths seen)
  endforeach()
  set_property(GLOBAL APPEND PROPERTY BACHLAB_FOUND_DEPENDENCIES ${paths})
endfunction()

# Writes the manifest; call once, after every folder has recorded its dependencies.
function(bachlab_write_dependency_manifest)
  get_property(paths GLOBAL PROPERTY BACHLAB_FOUND_DEPENDENCIES)
  list(REMOVE_DUPLICATES paths)
  list(SORT paths)
  list(JOIN paths "\n" text)
  file(WRITE "${CMAKE_BINARY_DIR}/found-dependencies.txt" "${text}\n")
endfunction()
