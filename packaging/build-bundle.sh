#!/bin/sh
# Builds what the packaged relaypro links besides glibc: the third-party libraries, static, from
# the Debian source packages pinned in packaging/bundle.lock, compiled against a Debian 11 sysroot
# (glibc 2.31), for ARCH (amd64 or arm64; arm64 with Debian's cross compiler). Prints the CMake
# arguments that build RelayPro against it (cmake/toolchain-bundle.cmake):
#
#   cmake -S . -B build/x $(packaging/build-bundle.sh amd64)
#
# build/bundle-ARCH/ holds
#   sysroot/        the target system the compiler sees: libc6, libc6-dev, libgcc-s1 (Debian 11),
#                   linux-libc-dev (Debian 12), unpacked, links made relative
#   prefix/         include/ and lib/*.a of OpenSSL, libcurl, libevent, libsodium, libyaml,
#                   jansson, libseccomp, zlib; manifest.txt (name, upstream version, Debian version)
#   bundle.cmake    the compilers and include folders cmake/toolchain-bundle.cmake reads
# It is built once and kept while the lock, this script, the toolchain file and the compiler stay
# the same (build/bundle-ARCH/.key). Sources and packages are fetched with apt from Debian's
# archive through a private apt configuration (build/bundle-apt/): the machine's own apt sources
# are not changed. Fetched files are checked against the lock's SHA-256.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
arch=${1:?usage: build-bundle.sh amd64|arm64}
case $arch in
amd64) triplet=x86_64-linux-gnu processor=x86_64 openssl_target=linux-x86_64 hardening="-fcf-protection" ;;
arm64) triplet=aarch64-linux-gnu processor=aarch64 openssl_target=linux-aarch64 hardening="-mbranch-protection=standard" ;;
*) echo "build-bundle: unknown architecture $arch (amd64, arm64)" >&2; exit 2 ;;
esac
host_arch=$(dpkg --print-architecture)
if [ "$arch" = "$host_arch" ]; then
    cc=gcc cxx=g++ cross=OFF tool_prefix=""
else
    cc=$triplet-gcc cxx=$triplet-g++ cross=ON tool_prefix=$triplet-
fi
lock=$top/packaging/bundle.lock
dir=$top/build/bundle-$arch
jobs=$(nproc)
say() { echo "build-bundle[$arch]: $*" >&2; }

packaging/install-deps.sh --bundle "$arch" >&2

# The key: what decides the bundle's content. The lock, this script, the CMake files the libraries
# are built with, and the versions of every tool that compiles or generates them.
key=$({
    cat "$lock" "$top/packaging/build-bundle.sh" "$top/cmake/toolchain-bundle.cmake" "$top/cmake/BundleProbe.cmake" \
        "$top"/packaging/patches/*.patch
    $cc --version; $cxx --version; "${tool_prefix}ld" --version | head -1; cmake --version | head -1
    autoconf --version | head -1; automake --version | head -1; libtoolize --version | head -1; perl -e 'print "$]\n"'
    echo "$arch"
} | sha256sum | cut -c1-16)
if [ -f "$dir/.key" ] && [ "$(cat "$dir/.key")" = "$key" ]; then
    echo "-DCMAKE_TOOLCHAIN_FILE=$top/cmake/toolchain-bundle.cmake -DRELAYPRO_BUNDLE_DIR=$dir"
    exit 0
fi

# --- a private apt: Debian 11, 12 and 13 indexes, binary and source, in build/bundle-apt
aptdir=$top/build/bundle-apt
mkdir -p "$aptdir/lists/partial" "$aptdir/archives/partial" "$top/build/bundle-src"
mirror=http://deb.debian.org
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
{
    for suite in bullseye bookworm trixie; do
        printf 'deb [signed-by=%s] %s/debian %s main\n' "$keyring" "$mirror" "$suite"
        printf 'deb [signed-by=%s] %s/debian-security %s-security main\n' "$keyring" "$mirror" "$suite"
        printf 'deb-src [signed-by=%s] %s/debian %s main\n' "$keyring" "$mirror" "$suite"
        printf 'deb-src [signed-by=%s] %s/debian-security %s-security main\n' "$keyring" "$mirror" "$suite"
    done
} > "$aptdir/sources.list"
apt_private() {
    apt-get -q -o Dir::Etc::SourceList="$aptdir/sources.list" -o Dir::Etc::SourceParts=/dev/null \
        -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null \
        -o Dir::State::Lists="$aptdir/lists" -o Dir::Cache::Archives="$aptdir/archives" \
        -o Dir::Cache::pkgcache="" -o Dir::Cache::srcpkgcache="" \
        -o APT::Architectures::="$host_arch" -o APT::Architectures::="$arch" -o APT::Sandbox::User=root "$@"
}
fresh=$(mktemp "$top/build/bundle-apt/.fresh.XXXXXX")
rm -f "$fresh"
trap 'rm -f "$fresh"' EXIT
apt_update() { # once per run (a marker file: the callers run in subshells)
    [ -f "$fresh" ] && return 0
    say "reading Debian's indexes (private apt configuration in $aptdir)"
    apt_private update >/dev/null
    touch "$fresh"
}
check_sha() { # FILE SHA256
    got=$(sha256sum < "$1" | cut -c1-64)
    [ "$got" = "$2" ] || { say "$(basename "$1"): SHA-256 $got, packaging/bundle.lock says $2"; exit 1; }
}
fetch_source() { # NAME VERSION SHA256 -> prints the unpacked folder
    upstream=${2#*:}
    folder=$top/build/bundle-src/$1_$upstream
    # Unpacked once per pinned .dsc: a changed hash in the lock unpacks it again.
    if [ "$(cat "$folder/.ready" 2>/dev/null)" != "$3" ]; then
        rm -rf "$folder" "$folder.dl"
        mkdir -p "$folder.dl"
        apt_update
        say "fetching the source of $1 $2"
        (cd "$folder.dl" && apt_private source --download-only "$1=$2" >/dev/null 2>&1) ||
            { say "apt-get source $1=$2 failed: is this version still in Debian's archive? (packaging/bundle.lock)"; exit 1; }
        check_sha "$folder.dl/$1_${upstream}.dsc" "$3"
        # dpkg-source checks every file against the .dsc's SHA-256 list (the .dsc itself is pinned
        # above); Debian's signature on the .dsc is not checked here (no keyring of developers).
        dpkg-source -x --require-strong-checksums "$folder.dl/$1_${upstream}.dsc" "$folder" >/dev/null 2>"$folder.dl.log" ||
            { say "dpkg-source refused $1 $2:"; cat "$folder.dl.log" >&2; exit 1; }
        rm -rf "$folder.dl" "$folder.dl.log"
        rm -f "$top/build/bundle-src/$1_"*.orig.tar.*  # dpkg-source's copies of the removed download
        echo "$3" > "$folder/.ready"
    fi
    echo "$folder"
}

# --- the sysroot
say "sysroot: Debian 11 C library, Debian 12 kernel headers"
# RELAYPRO_BUNDLE_RESUME=1 keeps the libraries already built (after an edit of this script that
# concerns only the ones not built yet); otherwise a changed key starts from nothing.
if [ "${RELAYPRO_BUNDLE_RESUME:-0}" = 1 ]; then
    rm -rf "$dir/sysroot" "$dir/work"
else
    rm -rf "$dir"
fi
mkdir -p "$dir/sysroot" "$dir/prefix/lib" "$dir/prefix/include" "$dir/work" "$aptdir/debs"
grep -E "^sysroot +[^ ]+ +[^ ]+ +$arch " "$lock" | while read -r _ name version _ sha; do
    deb=$aptdir/debs/${name}_$(echo "$version" | sed 's/^[0-9]*://')_$arch.deb
    if [ ! -f "$deb" ] || [ "$(sha256sum < "$deb" | cut -c1-64)" != "$sha" ]; then
        apt_update
        (cd "$aptdir/debs" && rm -f "${name}_"*"_$arch.deb" && apt_private download "$name:$arch=$version" >/dev/null 2>&1) ||
            { say "apt-get download $name:$arch=$version failed (packaging/bundle.lock)"; exit 1; }
        mv "$aptdir/debs/${name}_"*"_$arch.deb" "$deb" 2>/dev/null || true
    fi
    check_sha "$deb" "$sha"
    dpkg-deb -x "$deb" "$dir/sysroot"
done
sysroot=$dir/sysroot
# Absolute links (libm.so -> /lib/...) would point into the build machine: make them relative.
find "$sysroot" -type l | while read -r link; do
    target=$(readlink "$link")
    case $target in /*) ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$sysroot$target")" "$link" ;; esac
done
[ -f "$sysroot/usr/lib/$triplet/libc.so" ] || { say "the sysroot has no libc.so"; exit 1; }

# The compiler's own C++ and builtin headers, then the sysroot's C headers, and nothing else: a
# cross compiler would otherwise search its own (Debian 12, glibc 2.36) headers first.
includes() { # LANGUAGE
    compiler=$cc; [ "$1" = c++ ] && compiler=$cxx
    builtin=$(realpath "$($compiler -print-file-name=include)")
    $compiler --sysroot="$sysroot" -E -x "$1" -v /dev/null 2>&1 | sed -n '/search starts here:/,/End of search/p' | sed -n 's/^ //p' |
        while read -r d; do
            case $d in
            */c++/*) realpath "$d" ;;
            *) if [ "$(realpath "$d")" = "$builtin" ]; then echo "$builtin"; fi ;;
            esac
        done
    echo "$sysroot/usr/include/$triplet"
    echo "$sysroot/usr/include"
}
glibc=$(grep -E "^sysroot +libc6 +" "$lock" | awk -v a="$arch" '$4 == a {print $3}' | sed 's/-.*//')
c_includes=$(includes c | tr '\n' ' ')
cxx_includes=$(includes c++ | tr '\n' ' ')
flags_of() { printf -- '-nostdinc'; for d in $1; do printf ' -isystem %s' "$d"; done; }
emulator=""
[ $cross = ON ] && emulator="qemu-$processor-static -L $sysroot"
cat > "$dir/bundle.cmake" <<EOF
# Written by packaging/build-bundle.sh $arch; read by cmake/toolchain-bundle.cmake.
set(RELAYPRO_BUNDLE_ARCH $arch)
set(RELAYPRO_BUNDLE_TRIPLET $triplet)
set(RELAYPRO_BUNDLE_PROCESSOR $processor)
set(RELAYPRO_BUNDLE_CROSS $cross)
set(RELAYPRO_BUNDLE_C_COMPILER $cc)
set(RELAYPRO_BUNDLE_CXX_COMPILER $cxx)
set(RELAYPRO_BUNDLE_C_INCLUDES $c_includes)
set(RELAYPRO_BUNDLE_CXX_INCLUDES $cxx_includes)
set(RELAYPRO_BUNDLE_HARDENING $hardening)
set(RELAYPRO_BUNDLE_EMULATOR $emulator)
set(RELAYPRO_BUNDLE_GLIBC $glibc)
EOF

# --- the libraries
prefix=$dir/prefix
CC="$cc --sysroot=$sysroot $(flags_of "$c_includes")"
CFLAGS="-O2 -g0 -fPIC -fstack-protector-strong -fstack-clash-protection $hardening -D_FORTIFY_SOURCE=2 -ffunction-sections -fdata-sections -ffile-prefix-map=$dir/work=."
LDFLAGS="-B$sysroot/usr/lib/$triplet/ -L$sysroot/usr/lib/$triplet -L$sysroot/lib/$triplet -L$prefix/lib"
export CC CFLAGS LDFLAGS
export CPPFLAGS="-I$prefix/include"
export LIBS="-ldl -lpthread"
export PKG_CONFIG_LIBDIR="$prefix/lib/pkgconfig" PKG_CONFIG_PATH=""
export AR=${tool_prefix}ar RANLIB=${tool_prefix}ranlib
host=--host=$triplet
# The compiler as every library's build calls it must see the sysroot's C library, not the build
# machine's (a cross compiler searches its own Debian 12 headers unless told otherwise).
printf '#include <features.h>\n#if __GLIBC__ != 2 || __GLIBC_MINOR__ != %s\n#error not the sysroot C library\n#endif\n' \
    "${glibc#2.}" | $CC $CFLAGS -x c -fsyntax-only - ||
    { say "the compiler does not use the sysroot's glibc $glibc headers"; exit 1; }
source_of() { grep -E "^source +$1 " "$lock" | awk '{print $3, $5}'; }
work_copy() { # NAME -> a fresh copy of NAME's source in work/, printed
    set -- "$1" $(source_of "$1")
    src=$(fetch_source "$1" "$2" "$3")
    rm -rf "$dir/work/$1"
    cp -a "$src" "$dir/work/$1"
    upstream=$(echo "$2" | sed 's/^[0-9]*://; s/-[^-]*$//; s/\.dfsg+really/ /; s/.* //; s/-stable$//')
    echo "$1 $upstream $2" > "$dir/work/$1.manifest"
    echo "$dir/work/$1"
}
log_of() { echo "$dir/work/$1.log"; }
step() { # NAME COMMAND...: runs in NAME's work folder, output in work/NAME.log
    name=$1; shift
    (cd "$dir/work/$name" && "$@") >> "$(log_of "$name")" 2>&1 ||
        { say "$name: '$*' failed; the end of $(log_of "$name"):"; tail -n 40 "$(log_of "$name")" >&2; exit 1; }
}
cmake_lib() { # NAME CMAKE-ARGS...: configure, build and install a CMake project
    name=$1; shift
    step "$name" cmake -S . -B _build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix" \
        -DCMAKE_INSTALL_LIBDIR=lib -DCMAKE_TOOLCHAIN_FILE="$top/cmake/toolchain-bundle.cmake" \
        -DRELAYPRO_BUNDLE_DIR="$dir" -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
        -DCMAKE_PROJECT_INCLUDE="$top/cmake/BundleProbe.cmake" \
        -DCMAKE_C_FLAGS="$(flags_of "$c_includes") $CFLAGS" -DBUILD_SHARED_LIBS=OFF "$@"
    step "$name" cmake --build _build -j "$jobs"
    step "$name" cmake --install _build
}
# NAME CONFIGURE-ARGS...: autoreconf first, as Debian's build does (its patches touch Makefile.am
# and configure.ac, which would otherwise make the shipped Makefiles rerun a mismatched automake).
autotools_lib() {
    name=$1; shift
    step "$name" autoreconf -fi
    step "$name" ./configure "$host" --prefix="$prefix" --libdir="$prefix/lib" --disable-shared --enable-static \
        --with-pic --disable-dependency-tracking "$@"
    step "$name" make -j "$jobs"
    step "$name" make install
}

build_zlib() {
    step zlib env CHOST=$triplet ./configure --static --prefix="$prefix" --libdir="$prefix/lib"
    step zlib make -j "$jobs" libz.a
    step zlib make install
}

# No shared library, no loadable modules or engines, no command-line tool, no tests or docs.
# OPENSSLDIR (and the prefix the binary remembers for modules and engines) is a path that cannot
# exist on any system, whoever tries to create it (/dev/null is not a folder): the binary must not
# read an openssl.cnf, certificates or modules someone put there (RelayPro also initialises
# OpenSSL with OPENSSL_INIT_NO_LOAD_CONFIG and finds the system's trust store itself,
# common/trust_store). It also keeps the build folder's path out of the binary.
openssl_dir=/dev/null/relaypro-openssl
build_openssl() {
    # RelayPro's patches on a bundled library (packaging/patches/openssl-*.patch, in name order; the
    # header of each says why). The manifest names them, and so does `relaypro version --verbose`.
    local patch
    for patch in "$top"/packaging/patches/openssl-*.patch; do
        step openssl patch -p1 --fuzz=0 -i "$patch"
        echo "$(cat "$dir/work/openssl.manifest") $(basename "$patch" .patch)" > "$dir/work/openssl.manifest"
    done
    # shellcheck disable=SC2086
    step openssl env CC="$cc" ./Configure "$openssl_target" no-shared no-module no-dso no-engine no-apps no-tests \
        no-docs no-legacy no-ssl3 no-comp no-quic --prefix="$openssl_dir" --libdir=lib --openssldir="$openssl_dir" \
        --sysroot="$sysroot" $(flags_of "$c_includes") $CFLAGS -B"$sysroot/usr/lib/$triplet/" \
        -L"$sysroot/usr/lib/$triplet" -L"$sysroot/lib/$triplet"
    step openssl make -j "$jobs" build_libs
    step openssl make install_dev DESTDIR="$dir/work/openssl-stage"
    cp -a "$dir/work/openssl-stage$openssl_dir/include/." "$prefix/include/"
    cp -a "$dir/work/openssl-stage$openssl_dir/lib/." "$prefix/lib/"
    sed -i "s|$openssl_dir|$prefix|g" "$prefix/lib/pkgconfig/"*.pc "$prefix/lib/cmake/OpenSSL/"*.cmake 2>/dev/null || true
}

build_libsodium() { autotools_lib libsodium; }
build_libevent() { autotools_lib libevent --disable-samples --disable-libevent-regress --disable-debug-mode; }
build_libseccomp() { autotools_lib libseccomp --disable-python; }
build_libyaml() { cmake_lib libyaml -DBUILD_TESTING=OFF -DINSTALL_CMAKE_DIR=lib/cmake/yaml; }
build_jansson() {
    cmake_lib jansson -DJANSSON_BUILD_DOCS=OFF -DJANSSON_EXAMPLES=OFF -DJANSSON_WITHOUT_TESTS=ON \
        -DJANSSON_BUILD_SHARED_LIBS=OFF
}

# HTTP and HTTPS through OpenSSL, with proxies; no other protocol, no compression, IDN, PSL, SSH,
# GSSAPI or HTTP/2 (what Debian's libcurl.a would pull in); no compiled-in CA paths.
build_curl() {
    cmake_lib curl -DBUILD_CURL_EXE=OFF -DBUILD_STATIC_LIBS=ON -DBUILD_TESTING=OFF -DBUILD_EXAMPLES=OFF \
        -DBUILD_LIBCURL_DOCS=OFF -DBUILD_MISC_DOCS=OFF -DENABLE_CURL_MANUAL=OFF -DCURL_USE_PKGCONFIG=OFF \
        -DHTTP_ONLY=ON -DCURL_USE_OPENSSL=ON -DOPENSSL_ROOT_DIR="$prefix" -DOPENSSL_USE_STATIC_LIBS=ON \
        -DCURL_DISABLE_OPENSSL_AUTO_LOAD_CONFIG=ON -DCURL_CA_BUNDLE=none -DCURL_CA_PATH=none -DCURL_CA_FALLBACK=OFF \
        -DCURL_ZLIB=OFF -DCURL_BROTLI=OFF -DCURL_ZSTD=OFF -DUSE_NGHTTP2=OFF -DUSE_LIBIDN2=OFF -DCURL_USE_LIBPSL=OFF \
        -DCURL_USE_LIBSSH2=OFF -DCURL_USE_LIBSSH=OFF -DCURL_USE_GSSAPI=OFF -DENABLE_ARES=OFF \
        -DENABLE_THREADED_RESOLVER=ON -DENABLE_UNIX_SOCKETS=OFF -DCURL_DISABLE_COOKIES=ON -DCURL_DISABLE_ALTSVC=ON \
        -DCURL_DISABLE_HSTS=ON -DCURL_DISABLE_NETRC=ON -DCURL_DISABLE_NTLM=ON -DCURL_DISABLE_KERBEROS_AUTH=ON \
        -DCURL_DISABLE_NEGOTIATE_AUTH=ON -DCURL_DISABLE_AWS=ON -DCURL_DISABLE_DOH=ON -DCURL_DISABLE_MIME=ON \
        -DCURL_DISABLE_FORM_API=ON -DCURL_DISABLE_WEBSOCKETS=ON -DCURL_DISABLE_PROGRESS_METER=ON \
        -DCURL_DISABLE_SRP=ON -DCURL_DISABLE_IPFS=ON -DPICKY_COMPILER=OFF
}

# In dependency order: libevent and libcurl link OpenSSL.
for name in zlib openssl libsodium libevent libseccomp libyaml jansson curl; do
    [ -f "$dir/.built-$name" ] && continue
    say "$name"
    work_copy "$name" >/dev/null
    "build_$name"
    mv "$dir/work/$name.manifest" "$dir/.built-$name"
    rm -rf "$dir/work/$name"
done
cat "$dir"/.built-zlib "$dir"/.built-openssl "$dir"/.built-libsodium "$dir"/.built-libevent \
    "$dir"/.built-libseccomp "$dir"/.built-libyaml "$dir"/.built-jansson "$dir"/.built-curl > "$prefix/manifest.txt"

rm -rf "$dir/work"
echo "$key" > "$dir/.key"
say "done: $(du -sh "$prefix/lib" | cut -f1) of static libraries in $prefix/lib"
echo "-DCMAKE_TOOLCHAIN_FILE=$top/cmake/toolchain-bundle.cmake -DRELAYPRO_BUNDLE_DIR=$dir"
