#!/bin/sh
# Installs every package RelayPro needs to build, test and package, from Debian 12's apt archive.
# Idempotent: when everything is present it does nothing (no network needed).
# Usage:
#   packaging/install-deps.sh               build + test dependencies (the system test's too)
#   packaging/install-deps.sh --packaging   what packaging/build-packages.sh needs besides the bundle
#   packaging/install-deps.sh --bundle ARCH what packaging/build-bundle.sh needs to build the static
#                                           libraries for ARCH (amd64, arm64: with Debian's cross
#                                           compiler, and qemu-user to run arm64 programs)
set -eu

BUILD="build-essential cmake ninja-build pkg-config git"
# The developer, sanitizer and fuzzing builds link Debian 12's libraries; the packaged binary
# links the bundle (packaging/build-bundle.sh), built from Debian sources with BUNDLE's tools.
LIBS="libevent-dev libssl-dev libsodium-dev libyaml-dev libjansson-dev
      libcurl4-openssl-dev zlib1g-dev libseccomp-dev libgtest-dev libgmock-dev"
BUNDLE="autoconf automake libtool gperf dpkg-dev debian-archive-keyring ca-certificates googletest"
PACKAGING="rpm lintian rpmlint file"
TEST="clang libclang-rt-14-dev clang-format clang-tidy
      curl openssl ca-certificates python3
      nats-server squid-openssl haproxy python3-cryptography python3-jwcrypto
      debootstrap systemd-container zstd gnuplot-nox prometheus iproute2"

arch=""
case "${1:-}" in
"") PACKAGES="$BUILD $LIBS $BUNDLE $PACKAGING $TEST" ;;
--packaging) PACKAGES="$BUILD $BUNDLE $PACKAGING" ;;
--bundle)
    arch=${2:?--bundle needs an architecture (amd64, arm64)}
    PACKAGES="$BUILD $BUNDLE"
    if [ "$arch" != "$(dpkg --print-architecture)" ]; then
        case $arch in arm64) triplet=aarch64-linux-gnu ;; *) echo "install-deps: unsupported architecture $arch" >&2; exit 2 ;; esac
        PACKAGES="$PACKAGES crossbuild-essential-$arch binutils-$triplet qemu-user-static"
    fi
    ;;
*) echo "usage: $0 [--packaging | --bundle amd64|arm64]" >&2; exit 2 ;;
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
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
