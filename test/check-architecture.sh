#!/bin/sh
# docs/ARCHITECTURE.md is the map of the code: every path it names in backticks must exist
# (`dir/name.{h,cc}` names both), and every source file of common/, ipc/, supervisor/ and
# worker/ must be named in it. Run by ctest as docs.architectureMap.
set -eu
top=${1:-$(dirname "$0")/..}
cd "$top"
doc=docs/ARCHITECTURE.md
status=0
named=$(mktemp)
trap 'rm -f "$named"' EXIT
# Every `path` of a file or folder in the project's trees, braces expanded.
grep -o '`[A-Za-z0-9_./{},-]*`' "$doc" | tr -d '`' |
    grep -E '^(common|ipc|supervisor|worker|test|packaging|cmake)/' | sort -u |
    while read -r path; do
        case $path in
        *'{'*'}'*)
            stem=${path%%\{*}
            rest=${path#*\{}
            list=${rest%%\}*}
            tail=${rest#*\}}
            for ext in $(echo "$list" | tr ',' ' '); do echo "$stem$ext$tail"; done
            ;;
        *) echo "$path" ;;
        esac
    done >"$named"
while read -r path; do
    if [ ! -e "$path" ]; then
        echo "ARCHITECTURE.md names $path, which does not exist"
        status=1
    fi
done <"$named"
for f in $(find common ipc supervisor worker -name '*.h' -o -name '*.cc' | sort); do
    if ! grep -qx "$f" "$named"; then
        echo "$f is not on the map in ARCHITECTURE.md"
        status=1
    fi
done
[ "$status" -eq 0 ] && echo "ARCHITECTURE.md: $(wc -l <"$named") paths named, all present; every source file on the map"
exit "$status"
