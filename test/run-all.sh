#!/bin/sh
# Builds RelayPro and runs every test, the way CI does (.ci/run calls this script):
#   1. the release build, which is the portable binary the packages ship (the bundle of
#      packaging/build-bundle.sh: static libraries from pinned Debian sources, a glibc 2.31
#      sysroot), warnings as errors, checked against the supported systems' floors, all ctest
#      tests (the relay, reload and upgrade suites also under simulated Linux 4.18 and 3.9);
#   2. the ASan + UBSan build on Debian 12's shared libraries, all ctest tests (LeakSanitizer
#      checks clean exits);
#   3. the packages for amd64 and arm64 (cross-compiled), lint, floors, dependency lists and no
#      test hook in them (test/check-shipped-binary.sh); the
#      arm64 unit tests under qemu-user; the packages' whole life under systemd on stock Debian 12
#      and Debian 11 roots;
#   4. the clang libFuzzer build, each fuzz target for RELAYPRO_FUZZ_SECONDS (default 60);
#   5. clang-tidy (.clang-tidy) and clang-format (.clang-format) on the project's sources.
# Installs what it needs with apt first (packaging/install-deps.sh). Run it as root on Debian 12.
# What it compiles once is kept under build/ (the bundles, the system test's roots).
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
jobs=$(nproc)
fuzz_seconds=${RELAYPRO_FUZZ_SECONDS:-60}

step() { printf '\n=== %s\n' "$*"; }

step "dependencies"
packaging/install-deps.sh

native=$(dpkg --print-architecture)
step "release build: the portable binary the packages ship (warnings are errors); its bundle of static libraries (kept in build/bundle-$native)"
packaging/configure-portable.sh build/release "$native" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRELAYPRO_WERROR=ON
cmake --build build/release -j "$jobs"
packaging/requirements.sh build/release/supervisor/relaypro
ctest --test-dir build/release --output-on-failure -j "$jobs" -LE "system|cross|soak"

step "sanitizer build (ASan + UBSan)"
cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DRELAYPRO_WERROR=ON -DRELAYPRO_SANITIZE=ON
cmake --build build/asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build/asan --output-on-failure -j "$jobs" -LE "system|cross|soak"

step "packages: $native from the release build, arm64 cross-compiled; lintian, rpmlint, floors, dependency lists"
rm -rf build/packages
packaging/build-packages.sh --arch "$native" --binary build/release/supervisor/relaypro
packaging/build-packages.sh --arch arm64
packaging/check-packages.sh build/packages/*.deb build/packages/*.rpm
test/check-shipped-binary.sh build/packages/*.deb build/packages/*.rpm

step "arm64 unit tests under qemu-user, on the Debian 11 sysroot (ctest -L cross)"
ctest --test-dir build/release -L cross --output-on-failure

step "system test: packages under a real systemd on stock Debian 12 and 11 roots (cached in build/release/system)"
if ! ctest --test-dir build/release -L system -V > build/release/system-test.log 2>&1; then
    tail -n 150 build/release/system-test.log
    exit 1
fi
grep -E '^[0-9]+: (system:|=== |  ✗|  →)|tests passed|Total Test' build/release/system-test.log

step "fuzz build (clang libFuzzer), ${fuzz_seconds}s per target"
cmake -S . -B build/fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRELAYPRO_WERROR=ON -DRELAYPRO_FUZZ=ON -DRELAYPRO_FUZZ_SECONDS="$fuzz_seconds"
cmake --build build/fuzz -j "$jobs"
ctest --test-dir build/fuzz -L fuzz --output-on-failure -j "$jobs"
# Each target's executions (libFuzzer's last line: "Done N runs in S second(s)").
awk '/^[0-9]+\/[0-9]+ Test: fuzz\./ { name = $3 } /^Done [0-9]+ runs/ { print "  " name ": " $2 " runs in " $5 " s" }' \
    build/fuzz/Testing/Temporary/LastTest.log

step "clang-tidy"
find common ipc supervisor worker -name '*.cc' | sort | xargs -r -P "$jobs" -n 4 clang-tidy -p build/release --quiet

step "clang-format"
find common ipc supervisor worker test -name '*.cc' -o -name '*.h' | sort | xargs -r clang-format --dry-run --Werror

printf '\nAll RelayPro tests passed (%s).\n' "$top"
