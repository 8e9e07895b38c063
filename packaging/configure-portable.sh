#!/bin/sh
# Configures BUILD_DIR as a portable build for ARCH: against the bundle of packaging/build-bundle.sh
# (built first when missing or out of date), with cmake/toolchain-bundle.cmake. A build folder
# configured against another bundle, or not against one, starts afresh: CMake keeps a toolchain's
# compilers and flags from the first configuration only.
#   packaging/configure-portable.sh BUILD_DIR ARCH [CMAKE-ARGUMENT...]
set -eu
cd "$(dirname "$0")/.."
build=${1:?usage: configure-portable.sh BUILD_DIR ARCH [CMAKE-ARGUMENT...]}
arch=${2:?usage: configure-portable.sh BUILD_DIR ARCH [CMAKE-ARGUMENT...]}
shift 2
bundle=$(packaging/build-bundle.sh "$arch")
key=$(cat "build/bundle-$arch/.key")
if [ -f "$build/CMakeCache.txt" ] && [ "$(cat "$build/.bundle-key" 2>/dev/null)" != "$key" ]; then
    echo "configure-portable: $build was configured another way: starting it afresh" >&2
    find "$build" -mindepth 1 -maxdepth 1 ! -name system -exec rm -rf {} +  # the system test's cached roots stay
fi
# shellcheck disable=SC2086
cmake -S . -B "$build" -G Ninja -DCMAKE_SKIP_RPATH=ON "$@" $bundle
echo "$key" > "$build/.bundle-key"
