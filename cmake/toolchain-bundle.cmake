# Builds against a bundle from packaging/build-bundle.sh ARCH (the portable build, what the
# packages ship): the compiler sees only the bundle's sysroot (Debian 11's glibc 2.31 and Debian
# 12's kernel headers) and its static libraries; GCC's own C++ headers and libraries come from the
# build machine and libstdc++ is linked statically. For arm64 this is a cross build whose programs
# run under qemu-user with the sysroot as their root.
#
#   cmake -S . -B build/x $(packaging/build-bundle.sh amd64)
#
# The bundle's CMake-built libraries (libyaml, jansson, libcurl) are built with this file too.
if(NOT RELAYPRO_BUNDLE_DIR AND DEFINED ENV{RELAYPRO_BUNDLE_DIR})
  set(RELAYPRO_BUNDLE_DIR $ENV{RELAYPRO_BUNDLE_DIR})
endif()
if(NOT RELAYPRO_BUNDLE_DIR OR NOT EXISTS "${RELAYPRO_BUNDLE_DIR}/bundle.cmake")
  message(FATAL_ERROR "toolchain-bundle.cmake needs -DRELAYPRO_BUNDLE_DIR=<folder made by packaging/build-bundle.sh>")
endif()
# try_compile projects read this file again and must see the same bundle.
set(ENV{RELAYPRO_BUNDLE_DIR} "${RELAYPRO_BUNDLE_DIR}")
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES RELAYPRO_BUNDLE_DIR)
include("${RELAYPRO_BUNDLE_DIR}/bundle.cmake")

set(CMAKE_C_COMPILER ${RELAYPRO_BUNDLE_C_COMPILER})
set(CMAKE_CXX_COMPILER ${RELAYPRO_BUNDLE_CXX_COMPILER})
if(RELAYPRO_BUNDLE_CROSS)
  set(CMAKE_SYSTEM_NAME Linux)
  set(CMAKE_SYSTEM_PROCESSOR ${RELAYPRO_BUNDLE_PROCESSOR})
  set(CMAKE_LIBRARY_ARCHITECTURE ${RELAYPRO_BUNDLE_TRIPLET})
  set(CMAKE_CROSSCOMPILING_EMULATOR ${RELAYPRO_BUNDLE_EMULATOR})
endif()
set(CMAKE_SYSROOT "${RELAYPRO_BUNDLE_DIR}/sysroot")

# Only these header folders, in this order (-nostdinc): a cross compiler's own Debian 12 headers
# (glibc 2.36) would otherwise come before the sysroot's.
# Then the hardening the bundled libraries get too: stack-clash protection and the architecture's
# control-flow protection (CET on amd64, BTI/PAC on arm64).
foreach(lang C CXX)
  set(_flags "-nostdinc")
  foreach(d ${RELAYPRO_BUNDLE_${lang}_INCLUDES})
    string(APPEND _flags " -isystem ${d}")
  endforeach()
  string(APPEND _flags " -fstack-clash-protection ${RELAYPRO_BUNDLE_HARDENING}")
  set(CMAKE_${lang}_FLAGS_INIT "${_flags}")
endforeach()
# The sysroot's C library and start files before the build machine's (GCC searches its own
# multiarch folder, which holds Debian 12's libc.so, ahead of the sysroot's).
set(_lib "${CMAKE_SYSROOT}/usr/lib/${RELAYPRO_BUNDLE_TRIPLET}")
foreach(kind EXE SHARED MODULE)
  set(CMAKE_${kind}_LINKER_FLAGS_INIT "-B${_lib}/ -L${_lib} -L${CMAKE_SYSROOT}/lib/${RELAYPRO_BUNDLE_TRIPLET}")
endforeach()

set(CMAKE_FIND_ROOT_PATH "${RELAYPRO_BUNDLE_DIR}/prefix")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
