#!/bin/sh
# The unit tests built for ARCH (arm64) the way the package's binary is (the bundle of
# packaging/build-bundle.sh: bundled libraries, Debian 11 glibc sysroot, Debian's cross compiler)
# and run under qemu-user with that sysroot as their root: glibc 2.31 and the arm64 libgcc_s of
# Debian 11, nothing of the build machine (CMAKE_CROSSCOMPILING_EMULATOR, cmake/toolchain-bundle.cmake).
# Shares build/pkg-ARCH with packaging/build-packages.sh.
#   test/cross/unit-tests.sh arm64       (ctest -L cross runs it)
set -eu
cd "$(dirname "$0")/../.."
arch=${1:?usage: unit-tests.sh arm64}
build=build/pkg-$arch
packaging/configure-portable.sh "$build" "$arch" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRELAYPRO_UNIT_TESTS_ONLY=ON >/dev/null
cmake --build "$build" --target unit_common unit_supervisor unit_ipc unit_worker relaypro
file "$build/test/unit_common"
packaging/requirements.sh "$build/supervisor/relaypro"
ctest --test-dir "$build" -L "unit-" --output-on-failure -j "$(nproc)"
