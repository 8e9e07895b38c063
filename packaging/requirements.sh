#!/bin/sh
# What a RelayPro binary needs from the system it runs on, and a check that it needs no more
# than every supported distribution has (docs/operators-guide.md, "Supported systems"):
#   - shared libraries: only glibc's own and libgcc_s.so.1 (the rest is linked statically);
#   - symbol versions: glibc no newer than GLIBC_MAX (2.28: RHEL 8), libgcc_s no newer than
#     GCC_MAX (7.0.0: RHEL 8's GCC 8 libgcc), and none of libstdc++ (linked statically).
# Reads the ELF version-needs table with readelf, so it checks binaries of any architecture.
#   packaging/requirements.sh BINARY            prints what BINARY needs; exit 1 when over a limit
#   GLIBC_MAX=2.31 packaging/requirements.sh B  another glibc limit
set -eu
bin=${1:?usage: requirements.sh BINARY}
glibc_max=${GLIBC_MAX:-2.28}
gcc_max=${GCC_MAX:-7.0.0}
allowed='^(libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|libgcc_s\.so\.1|ld-linux[-a-z0-9_.]*\.so\.[0-9]+)$'

needs=$(readelf -V -W "$bin" | sed -n '/Version needs section/,$p')
versions() { # PREFIX: every PREFIX_x.y.z the binary needs, oldest first
    printf '%s\n' "$needs" | grep -o "Name: $1_[0-9][0-9.]*" | sed "s/^Name: $1_//" | sort -t. -k1,1n -k2,2n -k3,3n -u
}
newer_than() { # VERSION LIMIT: true when VERSION > LIMIT
    [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -t. -k1,1n -k2,2n -k3,3n | tail -1)" = "$1" ]
}
status=0
complain() { echo "requirements: $*" >&2; status=1; }

echo "binary: $bin ($(file -b "$bin" | cut -d, -f1-2))"
glibc=$(versions GLIBC | tail -1)
echo "needs glibc >= $glibc (limit $glibc_max)"
for v in $(versions GLIBC); do
    if newer_than "$v" "$glibc_max"; then
        complain "GLIBC_$v is newer than GLIBC_$glibc_max, needed for: $(readelf --dyn-syms -W "$bin" | awk -v v="@GLIBC_$v" 'index($8, v) { sub(/@.*/, "", $8); print $8 }' | sort -u | paste -sd' ' -)"
    fi
done
gcc=$(versions GCC | tail -1)
echo "needs libgcc_s >= GCC_${gcc:-none} (limit GCC_$gcc_max)"
for v in $(versions GCC); do
    newer_than "$v" "$gcc_max" && complain "GCC_$v (libgcc_s) is newer than GCC_$gcc_max"
done
if [ -n "$(versions GLIBCXX)$(versions CXXABI)" ]; then
    complain "it needs the system's libstdc++ (GLIBCXX_$(versions GLIBCXX | tail -1)); link it statically"
else
    echo "needs no libstdc++ (linked statically)"
fi
echo "libraries:"
for lib in $(readelf -d -W "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    echo "  $lib"
    printf '%s\n' "$lib" | grep -Eq "$allowed" || complain "$lib is not a library every distribution has (only glibc's and libgcc_s.so.1 may stay shared)"
done
if readelf -d -W "$bin" | grep -Eq '\((RPATH|RUNPATH)\)'; then
    complain "it carries an RPATH/RUNPATH: $(readelf -d -W "$bin" | grep -E '\((RPATH|RUNPATH)\)')"
fi
exit $status
