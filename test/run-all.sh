#!/bin/sh
# Builds RelayPro and runs every test, the way CI does (.ci/run calls this script):
#   1. the release build with warnings as errors, all ctest tests;
#   2. the ASan + UBSan build, all ctest tests (LeakSanitizer checks clean exits);
#   3. the clang libFuzzer build, each fuzz target for RELAYPRO_FUZZ_SECONDS (default 60);
#   4. clang-tidy (.clang-tidy) and clang-format (.clang-format) on the project's sources.
# Installs what it needs with apt first (packaging/install-deps.sh). Run it as root on Debian 12.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
jobs=$(nproc)
fuzz_seconds=${RELAYPRO_FUZZ_SECONDS:-60}

step() { printf '\n=== %s\n' "$*"; }

step "dependencies"
packaging/install-deps.sh

step "release build (warnings are errors)"
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRELAYPRO_WERROR=ON
cmake --build build/release -j "$jobs"
ctest --test-dir build/release --output-on-failure -j "$jobs" -LE "system|cross|soak"

step "sanitizer build (ASan + UBSan)"
cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DRELAYPRO_WERROR=ON -DRELAYPRO_SANITIZE=ON
cmake --build build/asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build/asan --output-on-failure -j "$jobs" -LE "system|cross|soak"

step "packages for this machine: lintian, rpmlint, what the packaged binary needs (docs/operators-guide.md)"
packaging/build-packages.sh --arch "$(dpkg --print-architecture)"
packaging/check-packages.sh build/packages/*_"$(dpkg --print-architecture)".deb build/packages/*_"$(uname -m)".rpm

step "system test: packages under a real systemd (container root cached in build/release/system)"
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
