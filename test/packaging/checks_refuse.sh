#!/bin/sh
# The package checks fail what they must (packaging/requirements.sh, packaging/check-packages.sh):
# a binary that needs a newer glibc or a library outside glibc, and a package whose dependencies
# name a library package or a glibc beyond the floor, are refused with the reason; the shell
# scripts of packaging/ and test/ parse. A check that cannot fail proves nothing.
#   test/packaging/checks_refuse.sh GOOD_BINARY    (ctest: packaging.checksRefuse)
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
good=${1:?usage: checks_refuse.sh GOOD_BINARY}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
expect_failure() { # DESCRIPTION PATTERN COMMAND...: COMMAND exits non-zero and says PATTERN
    what=$1 pattern=$2
    shift 2
    if out=$("$@" 2>&1); then
        echo "checks_refuse: NOT refused: $what"
        failures=$((failures + 1))
    elif ! printf '%s\n' "$out" | grep -q -- "$pattern"; then
        echo "checks_refuse: refused without naming \"$pattern\": $what"
        printf '%s\n' "$out" | sed 's/^/  /'
        failures=$((failures + 1))
    else
        echo "checks_refuse: refused as it must: $what"
    fi
}

for script in "$top"/packaging/*.sh "$top"/packaging/scripts/* "$top"/test/*.sh "$top"/test/*/*.sh; do
    case $script in *.sh) ;; *) continue ;; esac
    if head -1 "$script" | grep -q bash; then shell=bash; else shell=sh; fi
    $shell -n "$script" || { echo "checks_refuse: $script does not parse"; failures=$((failures + 1)); }
done

"$top/packaging/requirements.sh" "$good" > /dev/null || { echo "checks_refuse: the good binary is refused"; failures=$((failures + 1)); }
# A stripped copy, as the packages hold (lintian reads the whole file).
strip -o "$work/relaypro" "$good"
good=$work/relaypro
# The build machine's curl: Debian 12's glibc (2.34 and later symbols) and libcurl, libz, ... shared.
expect_failure "a binary needing a newer glibc" "GLIBC_2.3[4-9]" "$top/packaging/requirements.sh" /usr/bin/curl
expect_failure "a binary needing libcurl.so.4" "libcurl.so.4 is not a library every distribution has" \
    "$top/packaging/requirements.sh" /usr/bin/curl
expect_failure "a floor below what the binary needs" "newer than GLIBC_2.17" env GLIBC_MAX=2.17 "$top/packaging/requirements.sh" "$good"

# Packages: the good binary with a dependency on a library package; the build machine's curl with
# an innocent-looking dependency list.
package() { # NAME BINARY DEPENDS
    root=$work/$1
    mkdir -p "$root/DEBIAN" "$root/opt/binalyze/air/relaypro"
    cp "$2" "$root/opt/binalyze/air/relaypro/relaypro"
    printf 'Package: binalyze-air-relaypro\nVersion: 0.0.1\nArchitecture: %s\nMaintainer: Test <t@example.com>\nDepends: %s\nDescription: test\n test\n' \
        "$(dpkg --print-architecture)" "$3" > "$root/DEBIAN/control"
    dpkg-deb --root-owner-group --build "$root" "$work/$1.deb" > /dev/null
    echo "$work/$1.deb"
}
expect_failure "a .deb depending on a library package" '"libssl3 (>= 3.0)"' \
    "$top/packaging/check-packages.sh" "$(package libdep "$good" "libc6 (>= 2.28), libssl3 (>= 3.0), passwd")"
expect_failure "a .deb depending on libc6 beyond the floor" '"libc6 (>= 2.34)"' \
    "$top/packaging/check-packages.sh" "$(package newlibc "$good" "libc6 (>= 2.34), passwd")"
expect_failure "a .deb whose binary needs more than its Depends say" "needs more than the supported systems have" \
    "$top/packaging/check-packages.sh" "$(package curl /usr/bin/curl "libc6 (>= 2.28), passwd")"

[ $failures -eq 0 ] || { echo "checks_refuse: $failures check(s) did not refuse"; exit 1; }
echo "checks_refuse: every bad binary and package was refused"
