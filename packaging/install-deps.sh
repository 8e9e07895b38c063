#!/bin/sh
# Installs every package RelayPro needs to build, test and package, from Debian 12's apt archive.
# Idempotent: when everything is present it does nothing (no network needed).
# Usage:
#   packaging/install-deps.sh               build + test dependencies (the system test's too)
#   packaging/install-deps.sh --packaging   what packaging/build-packages.sh needs for this machine
#   packaging/install-deps.sh --cross arm64 cross-compiling and packaging for arm64 (Debian
#                                           multiarch), and qemu-user to run the arm64 unit tests
set -eu

BUILD="build-essential cmake ninja-build pkg-config git"
LIBS="libevent-dev libssl-dev libsodium-dev libyaml-dev libjansson-dev libsystemd-dev
      libcurl4-openssl-dev zlib1g-dev libseccomp-dev libgtest-dev libgmock-dev"
PACKAGING="rpm lintian rpmlint file"
TEST="clang libclang-rt-14-dev clang-format clang-tidy
      curl openssl ca-certificates python3
      nats-server squid-openssl haproxy python3-cryptography python3-jwcrypto
      debootstrap systemd-container zstd gnuplot-nox"

arch=""
case "${1:-}" in
"") PACKAGES="$BUILD $LIBS $PACKAGING $TEST" ;;
--packaging) PACKAGES="$BUILD $LIBS $PACKAGING" ;;
--cross)
    arch=${2:?--cross needs an architecture (arm64)}
    case $arch in arm64) triplet=aarch64-linux-gnu ;; *) echo "install-deps: unsupported architecture $arch" >&2; exit 2 ;; esac
    PACKAGES="$BUILD $PACKAGING crossbuild-essential-$arch qemu-user-static binutils-$triplet"
    # libevent-dev is not Multi-Arch: same in Debian 12 (its :arm64 package would remove the
    # machine's own): the foreign libraries only, and build-packages.sh unpacks libevent-dev:arm64
    # into a folder of its own.
    for l in $LIBS; do
        [ "$l" = libevent-dev ] && continue
        PACKAGES="$PACKAGES $l:$arch"
    done
    for l in libevent-2.1-7 libevent-core-2.1-7 libevent-extra-2.1-7 libevent-openssl-2.1-7 libevent-pthreads-2.1-7; do
        PACKAGES="$PACKAGES $l:$arch"
    done
    ;;
*) echo "usage: $0 [--packaging | --cross arm64]" >&2; exit 2 ;;
esac

# Installed for this machine's architecture (or arch-independent), or for the one named (pkg:arch).
native=$(dpkg --print-architecture)
installed() {
    case $1 in
    *:*) dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed$' ;;
    *) dpkg-query -W -f='${Status} ${Architecture}\n' "$1" 2>/dev/null | grep -Eq "^install ok installed ($native|all)$" ;;
    esac
}
missing=""
for p in $PACKAGES; do
    installed "$p" || missing="$missing $p"
done

if [ -z "$missing" ]; then
    echo "install-deps: all packages present"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages:$missing; run this script as root" >&2
    exit 1
fi

echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# Test peers (squid, nats-server) must not start as services on the build machine: tests run
# their own instances on loopback. policy-rc.d answers "not now" to every service start.
policy=/usr/sbin/policy-rc.d
made_policy=no
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    made_policy=yes
fi
trap 'if [ "$made_policy" = yes ]; then rm -f "$policy"; fi' EXIT
if [ -n "$arch" ] && ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
    dpkg --add-architecture "$arch"
fi
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
