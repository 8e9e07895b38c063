#!/bin/sh
# Checks built packages: lintian on each .deb, rpmlint on each .rpm (any finding not listed in
# packaging/lint-allowed.txt fails); the binary inside each against the supported systems
# (packaging/requirements.sh: glibc floor, shared libraries); and the package's own dependency
# list: a .deb depends on libc6 at the floor and passwd only, an .rpm requires glibc's sonames (and
# libgcc_s.so.1) at the floor, /bin/sh, shadow-utils and systemd only. No library package: the
# rest is inside the binary.
#   packaging/check-packages.sh build/packages/*.deb build/packages/*.rpm
set -eu
here=$(cd "$(dirname "$0")" && pwd)
allowed=$here/lint-allowed.txt
status=0
for pkg in "$@"; do
    case $pkg in
    *.deb)
        tool=lintian
        findings=$(lintian --tag-display-limit 0 "$pkg" 2>/dev/null | grep -E '^[EWI]: ' || true)
        tags=$(printf '%s\n' "$findings" | sed -n 's/^[EWI]: [^ ]*: \([^ ]*\).*/\1/p')
        ;;
    *.rpm)
        tool=rpmlint
        findings=$(rpmlint "$pkg" 2>/dev/null | grep -E ': [EW]: ' || true)
        tags=$(printf '%s\n' "$findings" | sed -n 's/^[^ ]*: [EW]: \([^ ]*\).*/\1/p')
        ;;
    *) echo "check-packages: not a package: $pkg" >&2; exit 2 ;;
    esac
    unexpected=""
    for t in $(printf '%s\n' "$tags" | sort -u); do
        grep -qx "$tool $t" "$allowed" || unexpected="$unexpected $t"
    done
    echo "check-packages: $(basename "$pkg"): $tool: $(printf '%s\n' "$tags" | grep -c . || true) findings, all explained${unexpected:+ except:$unexpected}"
    if [ -n "$unexpected" ]; then
        printf '%s\n' "$findings" | sed 's/^/  /'
        status=1
    fi
    dir=$(mktemp -d)
    if [ "$tool" = lintian ]; then
        dpkg-deb -x "$pkg" "$dir"
        deps=$(dpkg-deb -f "$pkg" Depends | tr ',' '\n' | sed 's/^ *//; s/ *$//')
    else
        abs=$(realpath "$pkg")
        (cd "$dir" && rpm2cpio "$abs" | cpio -idm --quiet)
        deps=$(rpm -qp --requires "$pkg" 2>/dev/null | sed 's/ *$//')
    fi
    "$here/requirements.sh" "$dir/opt/binalyze/air/relaypro/relaypro" | sed 's/^/  /' || status=1
    rm -rf "$dir"
    floor=${GLIBC_MAX:-2.28}
    for d in $(printf '%s\n' "$deps" | tr ' ' '~'); do
        d=$(printf '%s' "$d" | tr '~' ' ')
        ok=no
        case $d in
        "passwd" | "/bin/sh" | "shadow-utils" | "systemd" | rpmlib\(*) | "rtld(GNU_HASH)") ok=yes ;;
        "libc6 (>= "*")")
            v=${d#libc6 (>= }
            v=${v%)}
            [ "$(printf '%s\n%s\n' "$v" "$floor" | sort -V | tail -1)" = "$floor" ] && ok=yes
            ;;
        libc.so.6* | libm.so.6* | libpthread.so.0* | libdl.so.2* | librt.so.1* | libgcc_s.so.1* | ld-linux*)
            v=$(printf '%s' "$d" | sed -n 's/.*(GLIBC_\([0-9.]*\)).*/\1/p')
            if [ -z "$v" ] || [ "$(printf '%s\n%s\n' "$v" "$floor" | sort -V | tail -1)" = "$floor" ]; then ok=yes; fi
            ;;
        esac
        if [ $ok = no ]; then
            echo "check-packages: $(basename "$pkg") depends on \"$d\": not a package every supported system has at the floor" >&2
            status=1
        fi
    done
    echo "check-packages: $(basename "$pkg"): depends on: $(printf '%s\n' "$deps" | paste -sd'|' - | sed 's/|/, /g')"
done
exit $status
