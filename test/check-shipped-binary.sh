#!/bin/sh
# The shipped relaypro carries no test hook (common/test_hooks.h): none of the hooks' variable
# names and none of their actions' marks may be in it. Given a .deb or .rpm, the binary inside is
# checked. With --test-build the opposite is checked, on relaypro-test: the marks are there, so a
# check that finds nothing is a check that can fail.
#   test/check-shipped-binary.sh [--test-build] BINARY|PACKAGE...
set -eu
want=absent
if [ "${1:-}" = --test-build ]; then
    want=present
    shift
fi
[ $# -gt 0 ] || { echo "usage: check-shipped-binary.sh [--test-build] BINARY|PACKAGE..." >&2; exit 2; }
# What only the hooks' code has: the environment variables it reads, the garbage it sends and
# a line of the sandbox self-test's report.
marks='RELAYPRO_TEST_HOOKS RELAYPRO_TEST_HOLD_FILE RELAYPRO_TEST_HEARTBEAT_MS RELAYPRO_TEST_REEXEC_PAUSE_MS RELAYPRO_TEST_HANDOVER_FORMAT RELAYPRO_TEST_FIRST_FLIGHT_HOLD_MS RELAYPRO_TEST_SHED_LOG_MS RELAYPRO_TEST_ADMISSION_TRACE RELAYPRO_INSTALLED_BINARY this-is-not-a-frame ptrace:supervisor'
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for input in "$@"; do
    abs=$(realpath "$input")
    case $input in
    *.deb)
        rm -rf "$work/x" && mkdir "$work/x"
        dpkg-deb -x "$abs" "$work/x"
        binary=$(find "$work/x" -type f -name relaypro | head -n 1)
        ;;
    *.rpm)
        rm -rf "$work/x" && mkdir "$work/x"
        (cd "$work/x" && rpm2cpio "$abs" | cpio -idm --quiet)
        binary=$(find "$work/x" -type f -name relaypro | head -n 1)
        ;;
    *) binary=$input ;;
    esac
    [ -n "$binary" ] && [ -f "$binary" ] || { echo "$input: no relaypro binary found"; status=1; continue; }
    strings -a "$binary" > "$work/strings"
    for mark in $marks; do
        text=$(echo "$mark" | tr '-' ' ')
        if grep -qF "$text" "$work/strings"; then found=present; else found=absent; fi
        if [ "$found" != "$want" ]; then
            echo "$input: \"$text\" is $found; it must be $want"
            status=1
        fi
    done
done
[ $status -eq 0 ] && echo "check-shipped-binary: $want in $*"
exit $status
