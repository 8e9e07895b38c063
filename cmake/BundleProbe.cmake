# A build against a bundle must compile against the bundle's sysroot C library, never the build
# machine's: a cross compiler searches its own (Debian 12, glibc 2.36) headers unless
# cmake/toolchain-bundle.cmake's flags reach it, and a CMAKE_C_FLAGS given on the command line
# replaces those flags. Included by every CMake project built against a bundle: RelayPro itself
# (cmake/Dependencies.cmake) and, through CMAKE_PROJECT_INCLUDE, the bundled libraries built with
# CMake (packaging/build-bundle.sh). Fails the configuration instead of building a binary whose
# glibc floor is silently the build machine's.
include_guard(GLOBAL)
include(CheckCSourceCompiles)
string(REPLACE "2." "" _minor "${RELAYPRO_BUNDLE_GLIBC}")
set(_probe "#include <features.h>\n#if __GLIBC__ != 2 || __GLIBC_MINOR__ != ${_minor}\n#error wrong C library\n#endif\nint main(void) { return 0; }\n")
check_c_source_compiles("${_probe}" RELAYPRO_SYSROOT_C_HEADERS)
if(NOT RELAYPRO_SYSROOT_C_HEADERS)
  message(FATAL_ERROR "the C compiler does not use the bundle's glibc ${RELAYPRO_BUNDLE_GLIBC} headers "
                      "(${RELAYPRO_BUNDLE_DIR}/sysroot): are CMAKE_C_FLAGS replacing the toolchain's?")
endif()
get_property(_languages GLOBAL PROPERTY ENABLED_LANGUAGES)
list(FIND _languages CXX _cxx)  # not IN_LIST: bundled projects may predate policy CMP0057
if(_cxx GREATER -1)
  include(CheckCXXSourceCompiles)
  check_cxx_source_compiles("#include <cstdio>\n${_probe}" RELAYPRO_SYSROOT_CXX_HEADERS)
  if(NOT RELAYPRO_SYSROOT_CXX_HEADERS)
    message(FATAL_ERROR "the C++ compiler does not use the bundle's glibc ${RELAYPRO_BUNDLE_GLIBC} headers")
  endif()
endif()
