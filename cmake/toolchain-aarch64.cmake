# Cross-compiling RelayPro for arm64 (aarch64) on Debian with multiarch: the
# crossbuild-essential-arm64 compilers and the :arm64 -dev packages
# (packaging/install-deps.sh --cross arm64). The arm64 unit tests run under qemu-user.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
# pkg-config reads the arm64 .pc files only; libevent-dev:arm64 (not co-installable with the
# machine's own libevent-dev) is unpacked by packaging/build-packages.sh into a folder of its own.
set(_pc /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
if(RELAYPRO_CROSS_PKG_CONFIG_DIR)
  set(_pc ${RELAYPRO_CROSS_PKG_CONFIG_DIR}:${_pc})
endif()
set(ENV{PKG_CONFIG_LIBDIR} ${_pc})
# try_compile projects read this file again: they must see the same folder.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES RELAYPRO_CROSS_PKG_CONFIG_DIR)
set(ENV{PKG_CONFIG_PATH} "")
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static -L /usr/aarch64-linux-gnu)
