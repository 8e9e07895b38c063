#!/bin/sh
# Prepares cross-compiling for ARCH (arm64) with Debian multiarch and prints the CMake arguments
# that select it. libevent-dev is not Multi-Arch: same in Debian 12 (its :arm64 package would
# remove the machine's own), so libevent-dev:ARCH is unpacked into build/cross-ARCH-libevent
# and pkg-config reads its .pc files from there; the other -dev packages are installed with apt.
#   cmake -S . -B build/x $(packaging/cross-prepare.sh arm64)
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
arch=${1:?usage: cross-prepare.sh arm64}
case $arch in
arm64) triplet=aarch64-linux-gnu toolchain=$top/cmake/toolchain-aarch64.cmake ;;
*) echo "cross-prepare: unsupported architecture $arch" >&2; exit 2 ;;
esac
packaging/install-deps.sh --cross "$arch" >&2
sysroot="$top/build/cross-$arch-libevent"
if [ ! -f "$sysroot/.ready" ]; then
    rm -rf "$sysroot"
    mkdir -p "$sysroot/debs"
    (cd "$sysroot/debs" && apt-get download -q "libevent-dev:$arch" >/dev/null 2>&1) ||
        { echo "cross-prepare: apt-get download libevent-dev:$arch failed" >&2; exit 1; }
    dpkg-deb -x "$sysroot"/debs/libevent-dev_*_"$arch".deb "$sysroot"
    # Its .so links point at the runtime libraries installed for $arch.
    for l in "$sysroot/usr/lib/$triplet"/*.so; do
        ln -sf "/usr/lib/$triplet/$(readlink "$l")" "$l"
    done
    sed -i "s|=/usr|=$sysroot/usr|" "$sysroot/usr/lib/$triplet/pkgconfig/"*.pc
    touch "$sysroot/.ready"
fi
echo "-DCMAKE_TOOLCHAIN_FILE=$toolchain -DRELAYPRO_CROSS_PKG_CONFIG_DIR=$sysroot/usr/lib/$triplet/pkgconfig"
