#!/bin/sh
# Files are concepts (../shared/STYLE.md): no source file of common/, ipc/, supervisor/ or worker/
# is over 600 lines. Functions over 80 lines are refused by clang-tidy (.clang-tidy,
# readability-function-size), which CI runs. Run by ctest as docs.sourceSizes.
set -eu
top=${1:-$(dirname "$0")/..}
cd "$top"
limit=600
status=0
for f in $(find common ipc supervisor worker -name '*.cc' -o -name '*.h' | sort); do
    n=$(wc -l < "$f")
    if [ "$n" -gt "$limit" ]; then
        echo "$f has $n lines, over $limit: split it by concern"
        status=1
    fi
done
[ $status -eq 0 ] && echo "check-source-sizes: every source file has at most $limit lines"
exit $status
