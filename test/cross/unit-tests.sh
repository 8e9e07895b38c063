#!/bin/sh
# The unit tests cross-compiled for ARCH (arm64) with Debian multiarch and run under qemu-user
# (qemu-aarch64-static, CMAKE_CROSSCOMPILING_EMULATOR in cmake/toolchain-aarch64.cmake).
#   test/cross/unit-tests.sh arm64       (ctest -L cross runs it)
set -eu
cd "$(dirname "$0")/../.."
arch=${1:?usage: unit-tests.sh arm64}
args=$(packaging/cross-prepare.sh "$arch")
build=build/cross-$arch
# shellcheck disable=SC2086
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRELAYPRO_UNIT_TESTS_ONLY=ON $args >/dev/null
cmake --build "$build" --target unit_common unit_supervisor unit_ipc unit_worker
file "$build/test/unit_common"
ctest --test-dir "$build" -L "unit-" --output-on-failure -j "$(nproc)"
