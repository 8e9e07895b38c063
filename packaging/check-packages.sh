#!/bin/sh
# Checks built packages: lintian on each .deb, rpmlint on each .rpm (any finding not listed in
# packaging/lint-allowed.txt fails); the binary inside each against the supported systems
# (packaging/requirements.sh: glibc floor, shared libraries); and the package's own dependency
# list: a .deb depends on libc6 at the floor and passwd only; an .rpm requires glibc's sonames
# (and libgcc_s.so.1) at the floor, /bin/sh, the useradd and groupadd its %pre runs (shadow-utils
# on RHEL, shadow on SLES) and systemd only. No library package: the rest is inside the binary.
# A tool that cannot run, or a package it cannot read, is a failure, never "no findings".
#   packaging/check-packages.sh build/packages/*.deb build/packages/*.rpm
set -eu
here=$(cd "$(dirname "$0")" && pwd)
allowed=$here/lint-allowed.txt
floor=${GLIBC_MAX:-2.28}
status=0
complain() { echo "check-packages: $*" >&2; status=1; }
at_most() { # VERSION LIMIT: true when VERSION <= LIMIT
    [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | tail -1)" = "$2" ]
}
[ $# -gt 0 ] || { echo "usage: check-packages.sh PACKAGE..." >&2; exit 2; }
for pkg in "$@"; do
    name=$(basename "$pkg")
    [ -f "$pkg" ] || { complain "$pkg: no such file"; continue; }
    case $pkg in
    *.deb) tool=lintian ;;
    *.rpm) tool=rpmlint ;;
    *) echo "check-packages: not a package: $pkg" >&2; exit 2 ;;
    esac
    command -v "$tool" >/dev/null || { complain "$tool is not installed (packaging/install-deps.sh)"; continue; }
    # lintian exits non-zero when it finds errors, rpmlint too: a crash is told apart by no output.
    if [ $tool = lintian ]; then
        report=$(lintian --tag-display-limit 0 "$pkg" 2>&1) || true
        findings=$(printf '%s\n' "$report" | grep -E '^[EWI]: ' || true)
        tags=$(printf '%s\n' "$findings" | sed -n 's/^[EWI]: [^ ]*: \([^ ]*\).*/\1/p')
        printf '%s\n' "$report" | grep -Eq "^[EWIPNO]: |^$" || complain "$name: lintian did not run: $report"
    else
        report=$(rpmlint "$pkg" 2>&1) || true
        findings=$(printf '%s\n' "$report" | grep -E ': [EW]: ' || true)
        tags=$(printf '%s\n' "$findings" | sed -n 's/^[^ ]*: [EW]: \([^ ]*\).*/\1/p')
        printf '%s\n' "$report" | grep -Eq '[0-9]+ packages and [0-9]+ specfiles checked' ||
            complain "$name: rpmlint did not run: $report"
    fi
    unexpected=""
    for t in $(printf '%s\n' "$tags" | sort -u); do
        grep -qx "$tool $t" "$allowed" || unexpected="$unexpected $t"
    done
    echo "check-packages: $name: $tool: $(printf '%s\n' "$tags" | grep -c . || true) findings, all explained${unexpected:+ except:$unexpected}"
    if [ -n "$unexpected" ]; then
        printf '%s\n' "$findings" | sed 's/^/  /'
        status=1
    fi

    dir=$(mktemp -d)
    if [ $tool = lintian ]; then
        dpkg-deb -x "$pkg" "$dir" || complain "$name: dpkg-deb cannot unpack it"
        deps=$(dpkg-deb -f "$pkg" Depends) || complain "$name: dpkg-deb cannot read its Depends"
        deps=$(printf '%s\n' "$deps" | tr ',' '\n' | sed 's/^ *//; s/ *$//')
    else
        abs=$(realpath "$pkg")
        (cd "$dir" && rpm2cpio "$abs" | cpio -idm --quiet) || complain "$name: rpm2cpio cannot unpack it"
        deps=$(rpm -qp --requires "$pkg") || complain "$name: rpm cannot read its Requires"
        deps=$(printf '%s\n' "$deps" | sed 's/ *$//')
    fi
    binary=$dir/opt/binalyze/air/relaypro/relaypro
    if [ -f "$binary" ]; then
        result=$("$here/requirements.sh" "$binary" 2>&1) || complain "$name: its binary needs more than the supported systems have"
        printf '%s\n' "$result" | sed 's/^/  /'
    else
        complain "$name: no /opt/binalyze/air/relaypro/relaypro inside"
    fi
    rm -rf "$dir"
    [ -n "$deps" ] || complain "$name: no dependency at all (not even the C library): unreadable or wrong"

    printf '%s\n' "$deps" | while IFS= read -r d; do
        [ -n "$d" ] || continue
        ok=no
        case $d in
        "passwd" | "/bin/sh" | "/usr/sbin/useradd" | "/usr/sbin/groupadd" | "systemd" | "rtld(GNU_HASH)") ok=yes ;;
        "rpmlib("*) ok=yes ;;
        "libc6 (>= "*")")
            v=${d#libc6 (>= }
            v=${v%)}
            at_most "$v" "$floor" && ok=yes
            ;;
        libc.so.6* | libm.so.6* | libpthread.so.0* | libdl.so.2* | librt.so.1* | ld-linux*)
            # "soname()(64bit)" or "soname(GLIBC_x.y)(64bit)"; GLIBC_PRIVATE and the like are refused.
            case $d in
            *"()"*) ok=yes ;;
            *"(GLIBC_"[0-9]*) v=$(printf '%s' "$d" | sed -n 's/.*(GLIBC_\([0-9][0-9.]*\)).*/\1/p')
                [ -n "$v" ] && at_most "$v" "$floor" && ok=yes ;;
            esac
            ;;
        libgcc_s.so.1*)
            case $d in
            *"()"*) ok=yes ;;
            *"(GCC_"[0-9]*) v=$(printf '%s' "$d" | sed -n 's/.*(GCC_\([0-9][0-9.]*\)).*/\1/p')
                [ -n "$v" ] && at_most "$v" "${GCC_MAX:-7.0.0}" && ok=yes ;;
            esac
            ;;
        esac
        if [ $ok = no ]; then
            echo "check-packages: $name depends on \"$d\": not something every supported system has at the floor" >&2
            echo bad
        fi
    done | grep -q bad && status=1
    echo "check-packages: $name: depends on: $(printf '%s\n' "$deps" | sort -u | paste -sd'|' - | sed 's/|/, /g')"
done
exit $status
