#!/bin/sh
# Installs every package RelayPro needs to build and test, from Debian 12's apt archive.
# Idempotent: when everything is present it does nothing (no network needed).
# Usage: packaging/install-deps.sh            build + test dependencies
set -eu

PACKAGES="
  build-essential cmake ninja-build pkg-config git
  libevent-dev libssl-dev libsodium-dev libyaml-dev libjansson-dev libsystemd-dev
  libcurl4-openssl-dev zlib1g-dev libseccomp-dev
  libgtest-dev libgmock-dev
  clang libclang-rt-14-dev clang-format clang-tidy
  curl openssl ca-certificates python3
  nats-server squid-openssl haproxy python3-cryptography python3-jwcrypto
"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing="$missing $p"
    fi
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
