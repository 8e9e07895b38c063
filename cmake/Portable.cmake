# The portable build (a bundle, RELAYPRO_BUNDLED): every executable links libstdc++ statically
# (the systems the packages promise have older libstdc++ than GCC 12's, or none) and carries the
# glibc shims of common/portable_glibc.cc, which stand in for the few symbols GCC 12's
# libstdc++.a takes from a glibc newer than the floor. libgcc_s stays shared: its static unwinder
# would need glibc 2.35 (_dl_find_object). The shims are objects of each executable, not an
# archive: libstdc++.a comes last on the link line, after any archive had its turn.
if(NOT RELAYPRO_BUNDLED)
  return()
endif()
add_library(relaypro_portable_glibc OBJECT ${CMAKE_SOURCE_DIR}/common/portable_glibc.cc)
target_link_libraries(relaypro_portable_glibc PRIVATE relaypro_build_flags)

function(relaypro_portable_executables dir)
  get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
  foreach(t ${targets})
    get_target_property(type ${t} TYPE)
    if(type STREQUAL "EXECUTABLE")
      target_sources(${t} PRIVATE $<TARGET_OBJECTS:relaypro_portable_glibc>)
      target_link_options(${t} PRIVATE -static-libstdc++)
    endif()
  endforeach()
  get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
  foreach(d ${subdirs})
    relaypro_portable_executables(${d})
  endforeach()
endfunction()
relaypro_portable_executables(${CMAKE_SOURCE_DIR})
