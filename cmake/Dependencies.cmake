# The third-party libraries, as the targets dep::event, dep::sodium, dep::yaml, dep::jansson,
# dep::curl and dep::seccomp, plus OpenSSL::SSL, OpenSSL::Crypto and ZLIB::ZLIB, from one of two
# places:
#   - a bundle (RELAYPRO_BUNDLE_DIR, set by cmake/toolchain-bundle.cmake): static libraries built
#     by packaging/build-bundle.sh from pinned Debian sources against a glibc 2.31 sysroot. The
#     packages ship this build; libstdc++ is linked statically, glibc and libgcc_s stay shared.
#   - the build machine's Debian 12 -dev packages, linked dynamically (packaging/install-deps.sh):
#     the quick developer build and the sanitizer and fuzzing builds.
# systemd's notify and socket-activation protocols are RelayPro's own code (supervisor/sd_daemon),
# so libsystemd is not linked in either case.
find_package(Threads REQUIRED)

if(RELAYPRO_BUNDLE_DIR)
  set(RELAYPRO_BUNDLED ON)
  set(_prefix "${RELAYPRO_BUNDLE_DIR}/prefix")
  if(NOT EXISTS "${_prefix}/manifest.txt")
    message(FATAL_ERROR "${RELAYPRO_BUNDLE_DIR} is not a finished bundle (run packaging/build-bundle.sh)")
  endif()
  include(${CMAKE_CURRENT_LIST_DIR}/BundleProbe.cmake)
  # The checkout's path stays out of the shipped binary (__FILE__, debug information).
  add_compile_options(-ffile-prefix-map=${CMAKE_SOURCE_DIR}=.)
  # A rebuilt bundle reconfigures: `version --verbose` names what is linked now.
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_prefix}/manifest.txt")
  # One imported static library per archive, with what it needs after it on the link line.
  function(relaypro_archive name archive)
    if(NOT EXISTS "${_prefix}/lib/lib${archive}.a")
      message(FATAL_ERROR "the bundle has no lib${archive}.a (${_prefix}/lib)")
    endif()
    add_library(${name} STATIC IMPORTED GLOBAL)
    set_target_properties(${name} PROPERTIES IMPORTED_LOCATION "${_prefix}/lib/lib${archive}.a"
                                             INTERFACE_INCLUDE_DIRECTORIES "${_prefix}/include"
                                             INTERFACE_LINK_LIBRARIES "${ARGN}")
  endfunction()
  relaypro_archive(OpenSSL::Crypto crypto Threads::Threads ${CMAKE_DL_LIBS})
  relaypro_archive(OpenSSL::SSL ssl OpenSSL::Crypto)
  relaypro_archive(ZLIB::ZLIB z)
  relaypro_archive(bundle::event_core event_core)
  relaypro_archive(bundle::event_extra event_extra bundle::event_core)
  relaypro_archive(bundle::event_pthreads event_pthreads bundle::event_core Threads::Threads)
  relaypro_archive(bundle::event_openssl event_openssl bundle::event_core OpenSSL::SSL)
  add_library(dep::event INTERFACE IMPORTED GLOBAL)
  set_target_properties(dep::event PROPERTIES INTERFACE_LINK_LIBRARIES
                        "bundle::event_openssl;bundle::event_pthreads;bundle::event_extra;bundle::event_core")
  relaypro_archive(dep::sodium sodium Threads::Threads)
  relaypro_archive(dep::yaml yaml)
  relaypro_archive(dep::jansson jansson)
  relaypro_archive(dep::curl curl OpenSSL::SSL Threads::Threads)
  relaypro_archive(dep::seccomp seccomp)
  # curl.h declares its functions dllimport-free only when told the library is static.
  set_property(TARGET dep::curl APPEND PROPERTY INTERFACE_COMPILE_DEFINITIONS CURL_STATICLIB)
  # `relaypro version --verbose`: name, upstream version and Debian version of each library.
  file(STRINGS "${_prefix}/manifest.txt" RELAYPRO_BUNDLE_MANIFEST)
else()
  set(RELAYPRO_BUNDLED OFF)
  find_package(PkgConfig REQUIRED)
  find_package(OpenSSL 3.0 REQUIRED)
  find_package(ZLIB REQUIRED)
  # dep::NAME: a pkg-config module of the build machine.
  function(relaypro_system name)
    pkg_check_modules(_${name} REQUIRED IMPORTED_TARGET GLOBAL ${ARGN})
    add_library(dep::${name} ALIAS PkgConfig::_${name})
  endfunction()
  relaypro_system(event libevent_core>=2.1 libevent_openssl>=2.1 libevent_pthreads>=2.1 libevent_extra>=2.1)
  relaypro_system(sodium libsodium>=1.0.18)
  relaypro_system(yaml yaml-0.1>=0.2.5)
  relaypro_system(jansson jansson>=2.14)
  relaypro_system(curl libcurl>=7.88)
  relaypro_system(seccomp libseccomp>=2.5)
  set(RELAYPRO_BUNDLE_MANIFEST "")
endif()
