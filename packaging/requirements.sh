#!/bin/sh
# What a RelayPro binary really needs from the system it runs on: the libraries it links
# (DT_NEEDED) and the newest glibc, libstdc++ and C++ ABI symbol versions it uses. CI prints it
# for the release build; docs/operators-guide.md ("Supported systems") is written from it.
#   packaging/requirements.sh BINARY
set -eu
bin=${1:?usage: requirements.sh BINARY}
newest() { # PREFIX: the highest version of PREFIX_x.y.z the binary references
    objdump -T "$bin" | grep -o "$1_[0-9][0-9.]*" | sed "s/^$1_//" | sort -t. -k1,1n -k2,2n -k3,3n -u | tail -1
}
echo "binary: $bin ($(file -b "$bin" | cut -d, -f1-2))"
echo "needs glibc >= $(newest GLIBC)"
if [ -n "$(newest GLIBCXX)" ]; then
    echo "needs libstdc++ GLIBCXX >= $(newest GLIBCXX), CXXABI >= $(newest CXXABI)"
else
    echo "needs no libstdc++ (linked statically)"
fi
echo "libraries:"
objdump -p "$bin" | awk '/NEEDED/ {print "  " $2}'
