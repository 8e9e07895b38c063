#!/bin/sh
# Builds the RelayPro packages (packaging.md): binalyze-air-relaypro_<VERSION>_<ARCH>.deb and
# .rpm for amd64 (x86_64) and arm64 (aarch64, cross-compiled), into build/packages/. The binary
# is the portable build: the bundle of packaging/build-bundle.sh (static third-party libraries,
# glibc 2.31 sysroot), checked by packaging/requirements.sh before it is packaged. Installs what
# it needs with apt first. The version comes from project(VERSION) in CMakeLists.txt, through the
# binary itself (`relaypro version`).
#
#   packaging/build-packages.sh                     both architectures
#   packaging/build-packages.sh --arch amd64        one architecture
#   packaging/build-packages.sh --binary FILE --arch amd64 [--out DIR]
#                                                   package a portable binary built elsewhere (the
#                                                   system test packages relaypro-next as the
#                                                   newer version)
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
arches="amd64 arm64"
binary=""
out="$top/build/packages"
while [ $# -gt 0 ]; do
    case $1 in
    --arch) arches=$2; shift 2 ;;
    --binary) binary=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--arch amd64|arm64] [--binary FILE] [--out DIR]" >&2; exit 2 ;;
    esac
done
[ -n "$binary" ] && case $binary in /*) ;; *) binary="$top/$binary" ;; esac
mkdir -p "$out"
case $out in /*) ;; *) out="$top/$out" ;; esac

for arch in $arches; do
    case $arch in
    amd64) rpm_arch=x86_64 triplet=x86_64-linux-gnu ;;
    arm64) rpm_arch=aarch64 triplet=aarch64-linux-gnu ;;
    *) echo "build-packages: unknown architecture $arch (amd64, arm64)" >&2; exit 2 ;;
    esac
    host_arch=$(dpkg --print-architecture)
    packaging/install-deps.sh --packaging >/dev/null
    strip_tool=strip
    [ "$arch" != "$host_arch" ] && strip_tool=$triplet-strip

    if [ -z "$binary" ]; then
        build="$top/build/pkg-$arch"
        echo "build-packages: building relaypro for $arch ($build)"
        # The unit tests are configured too (not built here): test/cross/unit-tests.sh builds them in
        # the same folder, so the arm64 libraries are compiled once.
        packaging/configure-portable.sh "$build" "$arch" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRELAYPRO_UNIT_TESTS_ONLY=ON >/dev/null
        cmake --build "$build" --target relaypro relaypro-next >/dev/null
        bin="$build/supervisor/relaypro"
    else
        bin=$binary
    fi
    # What every supported distribution must provide, and nothing more (docs/operators-guide.md).
    packaging/requirements.sh "$bin" >/dev/null || {
        echo "build-packages: $bin needs more than the supported systems have (packaging/requirements.sh)" >&2
        exit 1
    }
    glibc_floor=$(packaging/requirements.sh "$bin" | sed -n 's/^needs glibc >= \([0-9.]*\).*/\1/p')
    # The version: the binary's own when it runs here, else project(VERSION).
    if [ "$arch" = "$host_arch" ]; then
        version=$("$bin" version | awk '{print $2}')
    else
        version=$(sed -n 's/^project(relaypro VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
    fi
    [ -n "$version" ] || { echo "build-packages: no version" >&2; exit 1; }

    work=$(mktemp -d "$out/.work-$arch.XXXXXX")
    trap 'rm -rf "$work"' EXIT

    # --- the file tree, shared by both formats (the unit's folder differs)
    stage() { # ROOT UNITDIR
        install -d -m 0755 "$1/opt/binalyze/air/relaypro" "$1/$2" "$1/usr/share/doc/binalyze-air-relaypro"
        install -m 0755 "$bin" "$1/opt/binalyze/air/relaypro/relaypro"
        "$strip_tool" --strip-unneeded --remove-section=.comment --remove-section=.note "$1/opt/binalyze/air/relaypro/relaypro"
        install -m 0644 packaging/binalyze-air-relaypro.service "$1/$2/binalyze-air-relaypro.service"
        install -m 0644 packaging/copyright "$1/usr/share/doc/binalyze-air-relaypro/copyright"
        install -m 0644 packaging/relaypro-alerts.yml "$1/usr/share/doc/binalyze-air-relaypro/relaypro-alerts.yml"
    }
    script() { # NAME: the shared functions, then the script's own part
        printf '#!/bin/sh\nset -e\n'
        cat packaging/scripts/common.sh
        printf '\n# --- %s\n' "$1"
        cat "packaging/scripts/$1"
    }

    build_epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

    # --- .deb
    deb_root=$work/deb
    stage "$deb_root" lib/systemd/system
    { printf 'binalyze-air-relaypro (%s) stable; urgency=medium\n\n  * Release %s.\n\n' "$version" "$version"
      printf ' -- Binalyze <support@binalyze.com>  %s\n' "$(LC_ALL=C date -R -d @"$build_epoch")"
    } | gzip -9n > "$deb_root/usr/share/doc/binalyze-air-relaypro/changelog.gz"
    install -d -m 0755 "$deb_root/DEBIAN"
    for s in postinst prerm postrm; do
        script "deb-$s" > "$deb_root/DEBIAN/$s"
        chmod 0755 "$deb_root/DEBIAN/$s"
    done
    # Depends: the C library at the binary's floor (libc6 brings libgcc-s1, the only other shared
    # library it links) and passwd, whose useradd the post-install runs. No library package: the
    # rest is inside the binary, so `dpkg -i` alone installs it on a stock system.
    size=$(du -sk --exclude=DEBIAN "$deb_root" | cut -f1)
    cat > "$deb_root/DEBIAN/control" <<CONTROL
Package: binalyze-air-relaypro
Version: $version
Architecture: $arch
Maintainer: Binalyze <support@binalyze.com>
Installed-Size: $size
Depends: libc6 (>= $glibc_floor), passwd
Section: net
Priority: optional
Homepage: https://www.binalyze.com/
Description: Binalyze AIR RelayPro, an authenticated relay for AIR Responders
 RelayPro lets AIR Responders that cannot reach the AIR console directly
 reach it through TLS tunnels: each Responder gets a time-limited token
 after RelayPro has checked its credential with the console, and may open
 tunnels only to the console's own host and ports. It runs as a hardened
 systemd service.
CONTROL
    deb="$out/binalyze-air-relaypro_${version}_${arch}.deb"
    dpkg-deb --root-owner-group -Zxz --build "$deb_root" "$deb" >/dev/null
    echo "build-packages: $deb"

    # --- .rpm
    rpm_root=$work/rpmroot
    stage "$rpm_root" usr/lib/systemd/system
    spec=$work/relaypro.spec
    {
        cat <<SPEC
Name: binalyze-air-relaypro
Version: $version
Release: 1
Summary: Binalyze AIR RelayPro, an authenticated relay for AIR Responders
License: Proprietary
Group: Applications/Internet
Packager: Binalyze <support@binalyze.com>
URL: https://www.binalyze.com/
# useradd and groupadd by path: shadow-utils provides them on RHEL and Amazon Linux, shadow on SLES.
Requires(pre): /usr/sbin/useradd, /usr/sbin/groupadd
Requires: /bin/sh, systemd
# The shared libraries the binary links (glibc's and libgcc_s.so.1) come from rpm's own reading
# of the binary; nothing else is needed (packaging/check-packages.sh checks the whole list).
AutoReqProv: yes
%global debug_package %{nil}
%global __os_install_post %{nil}
%global _build_id_links none

%description
RelayPro lets AIR Responders that cannot reach the AIR console directly
reach it through TLS tunnels: each Responder gets a time-limited token
after RelayPro has checked its credential with the console, and may open
tunnels only to the console's own host and ports. It runs as a hardened
systemd service.

%install
cp -a $rpm_root/. %{buildroot}/

%files
%dir %attr(1775,root,air-relaypro) /opt/binalyze/air/relaypro
%attr(0755,root,root) /opt/binalyze/air/relaypro/relaypro
%attr(0644,root,root) /usr/lib/systemd/system/binalyze-air-relaypro.service
%doc %attr(0644,root,root) /usr/share/doc/binalyze-air-relaypro/copyright
%doc %attr(0644,root,root) /usr/share/doc/binalyze-air-relaypro/relaypro-alerts.yml

%changelog
* $(LC_ALL=C date -u -d @"$build_epoch" '+%a %b %d %Y') Binalyze <support@binalyze.com> - $version-1
- Release $version.

SPEC
        for s in pre posttrans preun postun; do
            printf '%%%s\n' "$s"
            script "rpm-$s" | sed '1d'
            printf '\n'
        done
    } > "$spec"
    rpmbuild -bb --quiet --target "$rpm_arch-linux" \
        --define "_topdir $work/rpmbuild" --define "_rpmdir $work/rpms" \
        --define "_build_name_fmt %%{NAME}.rpm" "$spec" >"$work/rpmbuild.log" 2>&1 ||
        { cat "$work/rpmbuild.log" >&2; exit 1; }
    rpm_file="$out/binalyze-air-relaypro_${version}_${rpm_arch}.rpm"
    mv "$work/rpms/binalyze-air-relaypro.rpm" "$rpm_file"
    echo "build-packages: $rpm_file"
    rm -rf "$work"
    trap - EXIT
done
