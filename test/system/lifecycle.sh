#!/bin/bash
# The operator's whole life of RelayPro, as packages under a real systemd (packaging.md,
# lifecycle.md), on stock roots: systemd boots as PID 1 in a systemd-nspawn container with its own
# network namespace, in a minimal debootstrapped root (minbase, systemd, dbus, and sudo for the
# operator) with nothing of the package's installed beforehand: Debian 12 (systemd 252, glibc 2.36)
# and Debian 11 (systemd 247, glibc 2.31). The roots are cached under the build folder. The test's
# own programs run from the build machine inside the container's network namespace, as a remote
# Responder would: the console simulator (test/tools/console_sim.py) plays console.test:443, an
# echo server its port 4222, curl and test/system/load.py the Responders.
#
#   .deb, on each root, installed with the documented command run by an operator account (relayadmin):
#         `export AIR_…; sudo -E dpkg -i ./binalyze-air-relaypro_<VERSION>_<ARCH>.deb`
#         without AIR_* -> enabled, not started, the next step printed; with AIR_* set -> active,
#         registered, every library the binary needs resolved, a Responder token and tunnels with it;
#         systemctl reload with a config change under load -> nothing dropped; watchdog: a
#         SIGSTOPped supervisor is killed and restarted by systemd; upgrade with dpkg -i of a newer
#         version while tunnels open and long tunnels stream -> 0 failed, 0 cut, MainPID kept, new
#         version serving; systemctl restart -> tokens still valid; logs/ replaced by a link to a
#         root folder -> an upgrade changes nothing there; remove -> service gone, data kept.
#   .rpm: install, upgrade under load and erase the same way (Debian's rpm with --nodeps).
#
# Usage: test/system/lifecycle.sh BUILD_DIR   (ctest -L system runs it; needs root)
# The packages are built from BUILD_DIR's relaypro (the installed version) and relaypro-next
# (the same code as version <semver>+next, the upgrade).
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) fails the test too
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?usage: lifecycle.sh BUILD_DIR [debian12] [debian11] [rpm] [chroot]}" && pwd)
shift
scenarios=${*:-debian12 debian11 rpm chroot}
work=$build/system
mkdir -p "$work"
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }
step() { printf '\n=== system: %s\n' "$*"; }
fail() {
    printf 'system: FAILED: %s\n' "$*" >&2
    if [ -n "${leader:-}" ]; then
        echo "--- the container's journal (last 60 lines)" >&2
        inside journalctl --no-pager -n 60 >&2 || true
        for f in "$root"/srv/test/*.progress "$root"/srv/test/*.json; do
            [ -f "$f" ] && { echo "--- ${f#"$root"}" >&2; cat "$f" >&2; echo >&2; }
        done
        echo "--- RelayPro's log (last 20 lines)" >&2
        inside tail -n 20 /opt/binalyze/air/relaypro/logs/relaypro.log.txt >&2 || true
    fi
    exit 1
}
expect() { # DESCRIPTION COMMAND...
    local what=$1; shift
    "$@" || fail "$what"
}
[ "$(id -u)" -eq 0 ] || fail "needs root (it boots a container)"
for tool in systemd-nspawn debootstrap zstd nsenter unshare dpkg-deb rpmbuild curl openssl /usr/bin/python3; do
    command -v "$tool" >/dev/null || fail "$tool is missing (packaging/install-deps.sh)"
done

# --- packages: the installed version and the upgrade, from the build's two binaries
step "packages"
rm -rf "$work/pkgs"
"$top/packaging/build-packages.sh" --arch amd64 --binary "$build/supervisor/relaypro" --out "$work/pkgs/old"
"$top/packaging/build-packages.sh" --arch amd64 --binary "$build/supervisor/relaypro-next" --out "$work/pkgs/new"
old_version=$("$build/supervisor/relaypro" version | awk '{print $2}')
new_version=$("$build/supervisor/relaypro-next" version | awk '{print $2}')

# --- the containers' root file systems: debootstrap once per suite, then a cached tarball.
# A stock minimal system: what debootstrap's minbase brings, systemd to boot, and sudo with an
# operator account (relayadmin) for the documented install command. Nothing the package needs is added.
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
mirror=${mirror:-http://deb.debian.org/debian}
# An interrupted debootstrap leaves its /proc mounted in the root (rm -rf then fails on every
# file of /proc): unmount whatever is mounted below DIR, deepest first.
unmount_below() { # DIR
    local m
    awk '{ print $2 }' /proc/self/mounts | grep -F "$1/" | sort -r | while read -r m; do
        umount -l "$m" || true
    done
}
root_tarball() { # SUITE EXTRA-PACKAGES -> prints the cached tarball's path
    local suite=$1 include="systemd,systemd-sysv,dbus,sudo${2:+,$2}"
    local key tarball
    # One cached root per suite and extra set (the plain bookworm root and the one with rpm are
    # both kept: evicting one for the other cost every CI run two debootstraps); the key moves
    # when the package list does, and only that set's older tarball is removed.
    key=$(printf 'v3 %s %s' "$suite" "$include" | sha256sum | cut -c1-16)
    local set=root-$suite-${2:-base}
    tarball=$work/$set-$key.tar.zst
    if [ ! -f "$tarball" ]; then
        step "debootstrap of a stock Debian $suite root (once; cached in $tarball)" >&2
        unmount_below "$work/rootfs"
        rm -rf "$work/rootfs"
        debootstrap --variant=minbase --include="$include" "$suite" "$work/rootfs" "$mirror" > "$work/debootstrap-$suite.log" 2>&1 ||
            { tail -20 "$work/debootstrap-$suite.log" >&2; fail "debootstrap $suite"; }
        chroot "$work/rootfs" useradd --create-home --shell /bin/sh relayadmin
        echo 'relayadmin ALL=(ALL) NOPASSWD: ALL' > "$work/rootfs/etc/sudoers.d/relayadmin"
        chmod 0440 "$work/rootfs/etc/sudoers.d/relayadmin"
        rm -f "$work/$set-"*.tar.zst
        find "$work" -maxdepth 1 -regex ".*/root-$suite-[0-9a-f]*\\.tar\\.zst" -delete  # the earlier naming
        tar -C "$work/rootfs" -I 'zstd -T0 -3' -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
        rm -rf "$work/rootfs"
    fi
    echo "$tarball"
}

# --- booting and entering a container
nspawn_pid=""
machine=""
root=""
leader=""
outside_pids=""
cleanup() {
    for pid in $outside_pids; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    outside_pids=""
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        kill -TERM "$nspawn_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$nspawn_pid" 2>/dev/null || true
        wait "$nspawn_pid" 2>/dev/null || true
    fi
    if [ -n "$machine" ]; then
        for h in systemd unified; do
            [ -d "/sys/fs/cgroup/$h/nspawn-$machine" ] &&
                find "/sys/fs/cgroup/$h/nspawn-$machine" -depth -type d -exec rmdir {} \; 2>/dev/null || true
        done
    fi
    [ -n "$root" ] && rm -rf "$root"
    nspawn_pid="" machine="" root="" leader=""
}
trap cleanup EXIT

boot() { # NAME TARBALL
    machine=rp$1-$$
    machine=${machine:0:20}
    root=$work/run-$1
    rm -rf "$root"
    mkdir -p "$root"
    tar -C "$root" -I zstd -xf "$2"
    mkdir -p "$root/srv/test" "$root/srv/console"
    cp -r "$work/pkgs" "$root/srv/test/"
    chmod -R a+rX "$root/srv/test"
    printf '127.0.0.1 localhost console.test %s\n::1 localhost ip6-localhost\n' "$machine" > "$root/etc/hosts"
    printf '%s\n' "$machine" > "$root/etc/hostname"
    cat > "$root/srv/console/state.json" <<'JSON'
{"deploymentTokens": ["deploy-token-1"], "responders": {"responder-1": "credential-1"}}
JSON
    (
        for h in systemd unified; do
            mkdir -p "/sys/fs/cgroup/$h/nspawn-$machine"
            echo $BASHPID > "/sys/fs/cgroup/$h/nspawn-$machine/cgroup.procs"
        done
        exec systemd-nspawn -D "$root" -b --machine="$machine" --register=no --keep-unit \
            --private-network --console=read-only > "$work/nspawn-$1.log" 2>&1 < /dev/null
    ) &
    nspawn_pid=$!
    for _ in $(seq 1 600); do
        leader=$(pgrep -P "$nspawn_pid" -x systemd || true)
        if [ -n "$leader" ]; then
            st=$(inside systemctl is-system-running 2>/dev/null || true)
            case $st in running | degraded) break ;; esac
        fi
        sleep 0.1
    done
    case ${st:-} in running | degraded) ;; *) cat "$work/nspawn-$1.log"; fail "systemd did not come up in the container" ;; esac
    echo "system: $1: $(inside sh -c '. /etc/os-release; echo "$PRETTY_NAME"'), systemd $(inside systemctl --version | awk 'NR==1 {print $2}'), $(inside ldd --version | head -1 | awk '{print "glibc " $NF}')"
    # The console (console_sim.py, its own CA) and the echo server on the console's port 4222.
    outside_exec /usr/bin/python3 "$top/test/tools/console_sim.py" --dir "$root/srv/console" --host console.test --port 443 \
        > "$work/console-$1.log" 2>&1 &
    outside_pids="$outside_pids $!"
    outside_exec /usr/bin/python3 "$top/test/system/load.py" echo --port 4222 > "$work/echo-$1.log" 2>&1 &
    outside_pids="$outside_pids $!"
    for _ in $(seq 1 100); do
        [ "$(outside curl -s -o /dev/null -w '%{http_code}' --cacert "$root/srv/console/ca.pem" https://console.test/api/app/check 2>/dev/null)" = 200 ] && return 0
        sleep 0.1
    done
    fail "the console simulator did not start in the container's network"
}

# A program of the build machine in the container's network namespace, with the container's
# /etc/hosts (console.test and the machine's name are 127.0.0.1 there); paths are the build
# machine's ($root/... for the container's files).
outside() {
    nsenter -t "$leader" -n -- unshare -m -- sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$root/etc/hosts" "$@"
}
# The same as a background job whose $! is the program itself (nsenter, unshare and sh each exec
# the next), so that cleanup's kill reaches it instead of leaving it behind.
outside_exec() {
    exec nsenter -t "$leader" -n -- unshare -m -- sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$root/etc/hosts" "$@"
}

inside() {
    nsenter -t "$leader" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb LC_ALL=C.UTF-8 "$@"
}

DIR=/opt/binalyze/air/relaypro
UNIT=binalyze-air-relaypro
relaypro() { inside "$DIR/relaypro" "$@"; }
status_field() { # PYTHON-EXPRESSION over the status JSON `s`
    relaypro status --json 2>/dev/null | /usr/bin/python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"
}
main_pid() { inside systemctl show -p MainPID --value "$UNIT"; }
wait_for() { # SECONDS DESCRIPTION COMMAND...
    local limit=$1 what=$2; shift 2
    local end=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || fail "$what (not within ${limit}s)"
        sleep 0.2
    done
}
old_generation_gone() {
    [ "$(status_field "len([w for w in s['workers'] if w['generation'] != s['generation']])")" = 0 ]
}
service_inactive() { ! inside systemctl is-active --quiet "$UNIT"; }
registered() { [ "$(status_field "s['registration']['state']")" = registered ]; }

# The operator's documented command, as the operator account, from the package's folder:
#   export AIR_CONSOLE_ADDRESS=… AIR_ORGANIZATION_ID=… AIR_DEPLOYMENT_TOKEN=…
#   sudo -E dpkg -i ./binalyze-air-relaypro_<VERSION>_<ARCH>.deb
# (rpm: `sudo -E rpm -i|-U --nodeps`, dnf being out of reach here). With `-` instead of the
# inputs, nothing is exported.
admin_installs() { # with-air|- COMMAND PACKAGE-PATH
    local exports="" dir file
    [ "$1" = with-air ] && exports='export AIR_CONSOLE_ADDRESS=console.test AIR_ORGANIZATION_ID=1 AIR_DEPLOYMENT_TOKEN=deploy-token-1 AIR_CONSOLE_CA_CERT=/srv/console/ca.pem;'
    dir=$(dirname "$3") file=$(basename "$3")
    inside runuser -u relayadmin -- sh -c "cd $dir && $exports sudo -E $2 ./$file"
}
install_with_air() { # COMMAND... PACKAGE-PATH (dpkg -i | rpm -i --nodeps | rpm -U --nodeps)
    admin_installs with-air "${*:1:$#-1}" "${!#}"
}

# File owners and modes of packaging.md's table.
check_files() {
    local want got
    while read -r path want; do
        got=$(inside stat -c '%U:%G %a' "$path") || fail "$path is missing"
        [ "$got" = "$want" ] || fail "$path is $got, packaging.md says $want"
    done <<EOF2
$DIR root:air-relaypro 1775
$DIR/relaypro root:root 755
$DIR/config.yml air-relaypro:air-relaypro 600
$DIR/logs air-relaypro:air-relaypro 750
$DIR/private air-relaypro:air-relaypro 700
/etc/environment.d/binalyze-air-relaypro.conf root:air-relaypro 640
$1 root:root 644
EOF2
    echo "system: owners and modes as packaging.md says"
}

# A Responder's token, then a tunnel with it to https://console.test/api/app/check.
get_token() {
    outside curl -sk -o "$root/srv/test/relay-ca.pem" "https://$machine:9443/relaypro/v1/ca.pem"
    outside curl -s --cacert "$root/srv/test/relay-ca.pem" -H 'Content-Type: application/json' \
        --data '{"responderId":"responder-1","credential":"credential-1"}' "https://$machine:9443/relaypro/v1/token" |
        /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}
tunnel_check() { # TOKEN -> the console's answer status through a tunnel
    outside curl -s -o /dev/null -w '%{http_code}' --proxy "https://$machine:9443" --proxy-cacert "$root/srv/test/relay-ca.pem" \
        --proxy-header "Proxy-Authorization: Bearer $1" --cacert "$root/srv/console/ca.pem" https://console.test/api/app/check
}

load_start() { # NAME SHORT LONG
    rm -f "$root/srv/test/$1.stop" "$root/srv/test/$1.json"
    printf '%s' "$token" > "$root/srv/test/token"
    outside /usr/bin/python3 "$top/test/system/load.py" run --proxy "$machine:9443" \
        --cafile "$root/srv/test/relay-ca.pem" --token-file "$root/srv/test/token" --target console.test:4222 \
        --short "$2" --long "$3" --stop "$root/srv/test/$1.stop" --out "$root/srv/test/$1.json" --max-seconds 900 \
        > "$work/load-$1.log" 2>&1 &
    outside_pids="$outside_pids $!"
}
load_progress() { # NAME -> tunnels completed so far
    /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["succeeded"])' \
        "$root/srv/test/$1.json.progress" 2>/dev/null || echo 0
}
progress_above() { # NAME COUNT: more than COUNT tunnels completed
    [ "$(load_progress "$1")" -gt "$2" ]
}
load_stop() { # NAME -> prints the result; fails on any failed or cut tunnel
    touch "$root/srv/test/$1.stop"
    wait_for 60 "the load generator $1 to stop" test -f "$root/srv/test/$1.json"
    local r
    r=$(cat "$root/srv/test/$1.json")
    echo "system: load $1: $r"
    /usr/bin/python3 -c '
import json,sys
r = json.loads(sys.argv[1])
sys.exit(0 if r["failed"] == 0 and r["cut"] == 0 and r["succeeded"] > 0 else 1)' "$r" || fail "load $1 lost connections: $r"
}

# Libraries RelayPro linked shared before its packages became self-contained: a stock root has
# none of them, and the installation must not need them.
formerly_needed="libevent-2.1-7 libevent-core-2.1-7 libsodium23 libjansson4 libyaml-0-2 libcurl4"

lifecycle() { # NAME FORMAT TARBALL: deb | rpm on that root
    local name=$1 format=$2 unit_path
    boot "$name" "$3"
    local pkg_old pkg_new p
    pkg_old=$(cd "$root/srv/test/pkgs/old" && ls ./*."$format")
    pkg_new=$(cd "$root/srv/test/pkgs/new" && ls ./*."$format")
    pkg_old=/srv/test/pkgs/old/${pkg_old#./}
    pkg_new=/srv/test/pkgs/new/${pkg_new#./}
    for p in $formerly_needed; do
        if inside dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q installed; then
            fail "the stock root has $p installed: it would hide a missing dependency"
        fi
    done
    if [ "$format" = deb ]; then
        step "deb ($name): install without AIR_*: enabled, not started, the next step printed"
        local out
        out=$(admin_installs - "dpkg -i" "$pkg_old" 2>&1) || { echo "$out"; fail "sudo -E dpkg -i without AIR_* failed"; }
        printf '%s\n' "$out" | sed 's/^/  /'
        printf '%s\n' "$out" | grep -q "enabled but not started" || fail "no next step printed"
        expect "enabled" inside systemctl is-enabled --quiet "$UNIT"
        if inside systemctl is-active --quiet "$UNIT"; then fail "started without a console"; fi
        inside grep -q '^consoleAddress: ""' "$DIR/config.yml" || fail "config.yml is not the template"
    fi

    step "$format ($name): install with AIR_* set: sudo -E, as the documentation says"
    if [ "$format" = deb ]; then
        # The same package again, now with the inputs: config.yml gains them, the service starts.
        install_with_air dpkg -i "$pkg_old"
        unit_path=/lib/systemd/system/$UNIT.service
    else
        install_with_air rpm -i --nodeps "$pkg_old"
        unit_path=/usr/lib/systemd/system/$UNIT.service
    fi
    expect "the service is active after install" inside systemctl is-active --quiet "$UNIT"
    # Everything the binary links is on this stock system (ldd: glibc's loader resolves them).
    local libs
    libs=$(inside ldd "$DIR/relaypro") || fail "ldd failed on the installed binary"
    if printf '%s\n' "$libs" | grep -q 'not found'; then fail "a library is missing: $libs"; fi
    echo "system: the binary's libraries, all present: $(printf '%s\n' "$libs" | awk '{print $1}' | paste -sd' ' -)"
    # lifecycle.md: bound, then every capability dropped (the unit grants CAP_NET_BIND_SERVICE).
    local caps
    caps=$(inside grep -E '^Cap(Inh|Prm|Eff|Amb):' "/proc/$(main_pid)/status" | awk '{print $2}' | sort -u)
    [ "$caps" = 0000000000000000 ] || fail "the supervisor kept capabilities: $(inside grep '^Cap' "/proc/$(main_pid)/status")"
    echo "system: the supervisor holds no capability; user $(inside stat -c %U "/proc/$(main_pid)")"
    echo "system: the service's open-file limit: $(inside grep 'Max open files' "/proc/$(main_pid)/limits" | tr -s ' ')"
    expect "the unit has no EnvironmentFile=" test -z "$(inside systemctl show -p EnvironmentFiles --value "$UNIT")"
    wait_for 30 "registration with the console" registered
    inside grep -q '^relayId: [1-9]' "$DIR/config.yml" || fail "config.yml has no relayId"
    if inside grep -q '^deploymentToken:' "$DIR/config.yml"; then fail "the deploymentToken line stayed in config.yml"; fi
    check_files "$unit_path"
    if [ "$format" = deb ]; then
        echo "system: systemd-analyze security $UNIT:"
        inside systemd-analyze security --no-pager "$UNIT" | grep -E '^✗|Overall exposure' | sed 's/^/  /'
    fi
    token=$(get_token)
    [ -n "$token" ] || fail "no token from the token endpoint"
    [ "$(tunnel_check "$token")" = 200 ] || fail "a tunnel with the token did not reach the console"
    echo "system: registered; a Responder token works through a tunnel"

    if [ "$format" = deb ]; then
        step "deb ($name): systemctl reload with a config change, under load"
        load_start reload 2 2
        wait_for 30 "tunnels through the relay" progress_above reload 20
        inside runuser -u air-relaypro -- sed -i 's/^debugLogging: false/debugLogging: true/' "$DIR/config.yml"
        inside systemctl reload "$UNIT"
        # systemd 252 names the unit and its description, 247 the description only.
        inside journalctl -u "$UNIT" --no-pager | grep -Eq "Reloaded (binalyze-air-relaypro.service|Binalyze AIR RelayPro)" ||
            fail "systemd did not see RELOADING=1 then READY=1"
        inside grep -q 'debugLogging' "$DIR/logs/relaypro.log.txt" || fail "the reload did not apply debugLogging"
        wait_for 30 "tunnels after the reload" progress_above reload $(($(load_progress reload) + 20))
        load_stop reload
        expect "active after reload" inside systemctl is-active --quiet "$UNIT"

        step "deb ($name): watchdog"
        local pid restarts t0
        pid=$(main_pid)
        restarts=$(inside systemctl show -p NRestarts --value "$UNIT")
        [ "$(inside systemctl show -p WatchdogUSec --value "$UNIT")" = 30s ] || fail "WatchdogSec is not 30s"
        t0=$SECONDS
        inside sh -c "kill -STOP $pid"
        local end=$((SECONDS + 120))
        while [ "$(main_pid)" = "$pid" ] || [ "$(main_pid)" = 0 ] || ! inside systemctl is-active --quiet "$UNIT"; do
            [ $SECONDS -lt $end ] || fail "the stopped supervisor was not restarted by the watchdog"
            sleep 0.5
        done
        [ "$(inside systemctl show -p NRestarts --value "$UNIT")" -gt "$restarts" ] || fail "NRestarts did not grow"
        inside journalctl -u "$UNIT" --no-pager | grep -q -i watchdog || fail "the journal does not name the watchdog"
        echo "system: watchdog: SIGSTOPped supervisor $pid replaced by $(main_pid) after $((SECONDS - t0))s"
        wait_for 30 "registered after the watchdog restart" registered
    fi

    step "$format ($name): upgrade to $new_version under load"
    load_start upgrade 4 3
    wait_for 30 "tunnels before the upgrade" progress_above upgrade 20
    local pid_before t_up before_done
    pid_before=$(main_pid)
    t_up=$EPOCHREALTIME
    if [ "$format" = deb ]; then
        install_with_air dpkg -i "$pkg_new"
    else
        install_with_air rpm -U --nodeps "$pkg_new"
    fi
    local upgrade_seconds
    upgrade_seconds=$(elapsed "$t_up")
    [ "$(main_pid)" = "$pid_before" ] || fail "MainPID changed during the upgrade"
    [ "$(status_field "s['version']")" = "$new_version" ] || fail "the new version is not serving"
    before_done=$(load_progress upgrade)
    wait_for 30 "tunnels after the upgrade" progress_above upgrade $((before_done + 20))
    load_stop upgrade
    local t_drain=$EPOCHREALTIME
    wait_for 120 "the old generation to drain" old_generation_gone
    echo "system: $format upgrade $old_version -> $new_version: package command ${upgrade_seconds}s, MainPID $pid_before kept, old generation gone $(elapsed "$t_drain")s after its last tunnels closed"

    if [ "$format" = deb ]; then
        step "deb ($name): systemctl restart keeps tokens valid"
        inside systemctl restart "$UNIT"
        expect "active after restart" inside systemctl is-active --quiet "$UNIT"
        [ "$(tunnel_check "$token")" = 200 ] || fail "the token from before the restart no longer works"
        echo "system: the token issued before the restart still opens tunnels"

        step "deb ($name): a path the unit keeps read-only is exit 78 naming ReadWritePaths=, without a restart loop"
        inside install -d -o air-relaypro -g air-relaypro -m 0750 /srv/relaypro-logs
        inside runuser -u air-relaypro -- sed -i 's|^  fileName: relaypro.log.txt|  fileName: /srv/relaypro-logs/relaypro.log.txt|' "$DIR/config.yml"
        if inside systemctl restart "$UNIT" 2>/dev/null; then fail "started with its log in a read-only folder"; fi
        wait_for 10 "the service to give up" service_inactive
        [ "$(inside systemctl show -p ExecMainStatus --value "$UNIT")" = 78 ] || fail "the exit status is not 78"
        inside journalctl -u "$UNIT" --no-pager | grep -q 'ReadWritePaths=' || fail "the error does not name ReadWritePaths="
        echo "system: $(inside journalctl -u "$UNIT" --no-pager -o cat | grep -m1 'ReadWritePaths=' | cut -c1-200)"
        inside runuser -u air-relaypro -- sed -i 's|^  fileName: /srv/relaypro-logs/relaypro.log.txt|  fileName: relaypro.log.txt|' "$DIR/config.yml"
        inside systemctl reset-failed "$UNIT"
        inside systemctl start "$UNIT"
        expect "active again with its log back in place" inside systemctl is-active --quiet "$UNIT"

        step "deb ($name): an upgrade that cannot switch fails with its reason; the same command again succeeds"
        local pid_serving out rc=0
        pid_serving=$(main_pid)
        inside runuser -u air-relaypro -- sed -i 's/^  headerTimeout: 10s/  headerTimeout: banana/' "$DIR/config.yml"
        out=$(install_with_air dpkg -i "$pkg_new" 2>&1) || rc=$?
        printf '%s\n' "$out" | grep -E 'headerTimeout|could not switch|upgrade failed' | sed 's/^/  /'
        [ $rc -ne 0 ] || fail "dpkg -i succeeded although the service could not switch"
        printf '%s\n' "$out" | grep -q 'headerTimeout' || fail "the failure does not name its reason"
        [ "$(main_pid)" = "$pid_serving" ] && inside systemctl is-active --quiet "$UNIT" || fail "the old service stopped"
        [ "$(tunnel_check "$token")" = 200 ] || fail "the old generation does not serve after a failed upgrade"
        inside runuser -u air-relaypro -- sed -i 's/^  headerTimeout: banana/  headerTimeout: 10s/' "$DIR/config.yml"
        install_with_air dpkg -i "$pkg_new" > /dev/null || fail "running the same dpkg -i again did not succeed"
        expect "active after the retried upgrade" inside systemctl is-active --quiet "$UNIT"
        echo "system: a failed switch failed dpkg -i (exit $rc) with the reason, the old generation kept serving; the retry succeeded"

        step "deb ($name): the maintainer scripts follow no link"
        inside mkdir -p /srv/rootonly
        inside sh -c 'echo root data > /srv/rootonly/keep; chmod 0755 /srv/rootonly; chmod 0644 /srv/rootonly/keep'
        inside mv "$DIR/logs" "$DIR/logs.real"
        inside ln -s /srv/rootonly "$DIR/logs"
        local snap_before snap_after rc=0
        snap_before=$(inside sh -c 'cd /srv/rootonly && find . -printf "%p %U:%G %m %s %T@\n" | sort; sha256sum keep')
        install_with_air dpkg -i "$pkg_new" > "$work/relink.log" 2>&1 || rc=$?
        snap_after=$(inside sh -c 'cd /srv/rootonly && find . -printf "%p %U:%G %m %s %T@\n" | sort; sha256sum keep')
        [ "$snap_before" = "$snap_after" ] || fail "the upgrade changed the root folder behind logs/: $snap_before // $snap_after"
        echo "system: logs/ -> root folder: upgrade (exit $rc) left the folder unchanged"
        sed 's/^/  /' "$work/relink.log"
        inside rm "$DIR/logs"
        inside mv "$DIR/logs.real" "$DIR/logs"
        inside systemctl restart "$UNIT"
        expect "active after logs/ is back" inside systemctl is-active --quiet "$UNIT"
    fi

    step "$format ($name): no secret in what the service wrote"
    # The deployment token, the Responder's credential, the token it got and the securityToken
    # the console issued: none may appear in the unit's journal or in the log files.
    local security
    security=$(inside sed -n 's/^securityToken: "\(.*\)"$/\1/p' "$DIR/config.yml")
    [ -n "$security" ] || fail "no securityToken in config.yml to look for"
    inside sh -c "journalctl -u $UNIT --no-pager -o cat; zcat -f $DIR/logs/relaypro.log.txt*" > "$work/written.txt"
    for secret in deploy-token-1 credential-1 "$token" "$security"; do
        if grep -F -q -- "$secret" "$work/written.txt"; then
            fail "a secret (${secret%"${secret#????}"}..., ${#secret} bytes) appears in the journal or the log"
        fi
    done
    echo "system: $(wc -l < "$work/written.txt") journal and log lines, none with a secret"

    step "$format ($name): remove"
    if [ "$format" = deb ]; then
        inside dpkg -r binalyze-air-relaypro
    else
        # As it was installed: Debian's rpm keeps its database in $HOME, which sudo -E keeps.
        inside runuser -u relayadmin -- sudo -E rpm -e --nodeps binalyze-air-relaypro
    fi
    if inside systemctl is-active --quiet "$UNIT"; then fail "the service still runs after remove"; fi
    if inside test -e "$DIR/relaypro"; then fail "the binary stayed"; fi
    if inside test -e "$unit_path"; then fail "the unit stayed"; fi
    for kept in "$DIR/config.yml" "$DIR/logs" "$DIR/private" /etc/environment.d/binalyze-air-relaypro.conf; do
        inside test -e "$kept" || fail "$kept was removed"
    done
    inside getent passwd air-relaypro >/dev/null || fail "the account was removed"
    echo "system: removed; config.yml, logs/, private/, the environment file and the account kept"
    cleanup
}

# Where systemd is not running (a chroot, a container build), the scripts say so and succeed.
in_chroot() { # TARBALL (with rpm)
    step "both formats in a chroot without systemd"
    local croot=$work/chroot
    rm -rf "$croot"
    mkdir -p "$croot"
    tar -C "$croot" -I zstd -xf "$1"
    cp -r "$work/pkgs" "$croot/srv/"
    local out rc
    for cmd in "dpkg -i /srv/pkgs/old/binalyze-air-relaypro_${old_version}_amd64.deb" "dpkg -r binalyze-air-relaypro" \
        "rpm -i --nodeps /srv/pkgs/old/binalyze-air-relaypro_${old_version}_x86_64.rpm" "rpm -e --nodeps binalyze-air-relaypro"; do
        rc=0
        out=$(chroot "$croot" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin $cmd 2>&1) || rc=$?
        [ $rc -eq 0 ] || { echo "$out"; rm -rf "$croot"; fail "in a chroot: $cmd exited $rc"; }
        case $cmd in
        "dpkg -i"* | "rpm -i"*)
            printf '%s\n' "$out" | grep -q "systemd is not running here" ||
                { echo "$out"; rm -rf "$croot"; fail "in a chroot: $cmd did not say that systemd is not running"; }
            [ -f "$croot/opt/binalyze/air/relaypro/config.yml" ] || { rm -rf "$croot"; fail "in a chroot: no config.yml"; }
            ;;
        esac
        echo "system: chroot: $cmd: exit 0"
    done
    rm -rf "$croot"
}

tarball_of() { # SUITE [EXTRA]
    local t
    t=$(root_tarball "$@") && [ -f "$t" ] || fail "no root for $1"
    echo "$t"
}
for scenario in $scenarios; do
    case $scenario in
    debian12) lifecycle debian12 deb "$(tarball_of bookworm)" ;;
    debian11) lifecycle debian11 deb "$(tarball_of bullseye)" ;;
    rpm) lifecycle rpm rpm "$(tarball_of bookworm rpm)" ;;
    chroot) in_chroot "$(tarball_of bookworm rpm)" ;;
    *) fail "unknown scenario $scenario (debian12, debian11, rpm, chroot)" ;;
    esac
done
echo
echo "system: all lifecycle checks passed ($scenarios)"
