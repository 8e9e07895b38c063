#!/bin/sh
# Checks built packages: lintian on each .deb, rpmlint on each .rpm (any finding not listed in
# packaging/lint-allowed.txt fails), and prints what the packaged binary needs from the system
# (packaging/requirements.sh) for docs/operators-guide.md's "Supported systems".
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
    if [ "$tool" = lintian ]; then
        dir=$(mktemp -d)
        dpkg-deb -x "$pkg" "$dir"
        "$here/requirements.sh" "$dir/opt/binalyze/air/relaypro/relaypro" | sed 's/^/  /'
        rm -rf "$dir"
    fi
done
exit $status
