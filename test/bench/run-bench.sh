#!/bin/bash
# BENCHMARKS.md's figures: RelayPro, Squid (squid-openssl: https_port, basic_ncsa_auth, CONNECT
# only to the target, one worker) and a direct no-proxy baseline, driven by the same generator
# (test/bench/loadgen), plus the floor: a minimal event-driven TLS accept-handshake-close server
# (test/bench/tls_floor) with the same OpenSSL, key type (ECDSA P-256) and concurrency.
#
# CPU pinning: the proxy under test on CPU 0, the generator and the echo target on CPU 1.
# CPU per tunnel = utime + stime of the proxy and its children (from /proc/PID/stat) over the
# run, divided by the tunnels that succeeded. Loopback only; every run is bounded in count.
#
#   test/bench/run-bench.sh BUILD_DIR [--quick] [--publish] [--compare OTHER_BUILD_DIR]
# writes BUILD_DIR/bench/results.md and chart.svg (gnuplot); --publish copies both to docs/bench/,
# which BENCHMARKS.md shows. --compare also runs OTHER_BUILD_DIR's relaypro and tls_floor (RelayPro
# rows and both floors, same generator, same run) and adds a table of the two side by side: the
# bundled OpenSSL 3.5 against a build on Debian 12's OpenSSL 3.0, say.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?usage: run-bench.sh BUILD_DIR [--quick] [--publish] [--compare OTHER_BUILD_DIR]}" && pwd)
quick=no publish=no compare=""
shift
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=yes ;;
    --publish) publish=yes ;;
    --compare) compare=$(cd "${2:?--compare needs a build folder}" && pwd); shift ;;
    *) echo "run-bench: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
out=$build/bench
rm -rf "$out"
mkdir -p "$out"
chmod 0755 "$out"
loadgen=$build/test/loadgen
floor=$build/test/tls_floor
relaypro=$build/supervisor/relaypro
# 9,000 idle tunnels: what one worker holds under the 20,000-descriptor cap (a tunnel takes two).
tunnels=6000 concurrency=50 idle=9000 bulk=$((1 << 30)) reps=5
if [ $quick = yes ]; then tunnels=600 idle=200 bulk=$((64 << 20)) reps=1; fi
proxy_cpu=0 load_cpu=1
[ "$(nproc)" -ge 2 ] || { proxy_cpu=0; load_cpu=0; }
hz=$(getconf CLK_TCK)

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
pids=()
# Squid names its shared-memory segments after its service name; one of this run's own, removed at
# the end, so that a squid killed earlier elsewhere cannot make this one fail ("File exists").
squid_service=relayprobench$$
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -f /dev/shm/"$squid_service"-*
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # PORT
    for _ in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "run-bench: nothing listens on $1" >&2
    exit 1
}
# CPU ticks of PID and its children.
cpu_ticks() {
    local total=0 p
    for p in $1 $(pgrep -P "$1" || true); do
        [ -r "/proc/$p/stat" ] || continue
        total=$((total + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat")))
    done
    echo $total
}
json() { /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"d": d}))' "$@"; }

# --- certificates, password files, the echo target
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$out/key.pem" -out "$out/cert.pem" 2>/dev/null
chmod 0644 "$out/key.pem"
printf 'u:p\n' > "$out/passwords.txt"
printf 'u:%s\n' "$(openssl passwd -apr1 p)" > "$out/htpasswd"
chmod 0644 "$out/htpasswd"

taskset -c $load_cpu "$loadgen" echo --listen 127.0.0.1:0 > "$out/echo.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q listening "$out/echo.out" && break; sleep 0.05; done
echo_port=$(sed -n 's/^listening 127.0.0.1://p' "$out/echo.out")
target=127.0.0.1:$echo_port

# --- the proxies
start_relaypro() {
    local port dir=$out/relaypro
    port=$(free_port)
    mkdir -p "$dir"
    cat > "$dir/config.yml" <<EOF
consoleAddress: "$target"
organizationId: 1
serverName: 127.0.0.1
httpsProxy:
  listen: "127.0.0.1:$port"
passwordFile: $out/passwords.txt
workers: 1
EOF
    : > "$dir/environment.conf"
    RELAYPRO_ENV_FILE=$dir/environment.conf taskset -c $proxy_cpu "$relaypro" run --config "$dir/config.yml" --user root \
        > "$dir/out.txt" 2> "$dir/err.txt" &
    pids+=($!)
    proxy_pid=$!
    proxy_port=$port
    wait_port "$port"
}
start_squid() {
    local port hport dir=$out/squid
    port=$(free_port) hport=$(free_port)
    mkdir -p "$dir"
    chmod 0777 "$dir"
    cat > "$dir/squid.conf" <<EOF
http_port 127.0.0.1:$hport
https_port 127.0.0.1:$port tls-cert=$out/cert.pem tls-key=$out/key.pem
workers 1
pid_filename $dir/squid.pid
access_log stdio:$dir/access.log
cache_log $dir/cache.log
coredump_dir $dir
cache deny all
cache_mem 8 MB
shutdown_lifetime 0 seconds
max_filedescriptors 19900
auth_param basic program /usr/lib/squid/basic_ncsa_auth $out/htpasswd
auth_param basic children 2
auth_param basic credentialsttl 1 hour
acl authed proxy_auth REQUIRED
acl target_port port $echo_port
acl CONNECT method CONNECT
http_access deny CONNECT !target_port
http_access allow authed
http_access deny all
EOF
    taskset -c $proxy_cpu /usr/sbin/squid -N -n "$squid_service" -f "$dir/squid.conf" > "$dir/out.txt" 2> "$dir/err.txt" &
    pids+=($!)
    proxy_pid=$!
    proxy_port=$port
    wait_port "$port"
}
start_floor() {
    local port
    port=$(free_port)
    taskset -c $proxy_cpu "$floor" --listen "127.0.0.1:$port" --cert "$out/cert.pem" --key "$out/key.pem" "$@" \
        > "$out/floor.out" 2>&1 &
    pids+=($!)
    proxy_pid=$!
    proxy_port=$port
    wait_port "$port"
}
stop_proxy() {
    kill "$proxy_pid" 2>/dev/null || true
    wait "$proxy_pid" 2>/dev/null || true
}

# One measured row: NAME, then loadgen arguments. The shared VM moves single runs by 10-20 %, so
# each row is run $reps times and the run with the median CPU per tunnel is kept (all are in
# NAME.runs). Writes $out/NAME.json and NAME.cpu (µs/tunnel).
measure() {
    local name=$1
    shift
    local before after i
    : > "$out/$name.runs"
    for i in $(seq 1 "$reps"); do
        # warm up (ticket, caches), not measured
        taskset -c $load_cpu "$loadgen" "$@" --count 200 > /dev/null 2>&1 || true
        before=$(cpu_ticks "$proxy_pid")
        taskset -c $load_cpu "$loadgen" "$@" --count "$tunnels" > "$out/$name.$i.json" || {
            echo "run-bench: $name failed: $(cat "$out/$name.$i.json")" >&2
            exit 1
        }
        after=$(cpu_ticks "$proxy_pid")
        /usr/bin/python3 -c "import json; d=json.load(open('$out/$name.$i.json')); print(round(($after-$before)*1e6/$hz/d['succeeded'],1), $i)" \
            >> "$out/$name.runs"
    done
    read -r cpu i < <(sort -n "$out/$name.runs" | sed -n "$(((reps + 1) / 2))p")
    echo "$cpu" > "$out/$name.cpu"
    cp "$out/$name.$i.json" "$out/$name.json"
    echo "run-bench: $name: $cpu µs CPU per tunnel (median of $(cut -d' ' -f1 "$out/$name.runs" | tr '\n' ' ')), $(json "$out/$name.json" 'd["tunnelsPerSecond"]') tunnels/s"
}
idle_rss() { # NAME
    taskset -c $load_cpu "$loadgen" idle --proxy "127.0.0.1:$proxy_port" --target "$target" --auth basic:u:p \
        --tunnels "$idle" --hold 3 --interval 2 --concurrency 100 --processes 2 --measure "$proxy_pid" > "$out/$1.json"
    echo "run-bench: $1: $(json "$out/$1.json" 'd["rssKiBPerTunnel"]') KiB per idle tunnel"
}
# One tunnel moving $bulk bytes: NAME-oneway (upload, the target checks the stream) and NAME (both
# ways at once, echoed). The proxy's CPU over the one-way run says how busy it was: below 100 %,
# the generator or the target was the limit. Each is run $reps times; the run with the median
# MB/s is kept (all are in NAME-oneway.runs and NAME.runs: MB/s, proxy CPU %, run). With a second
# argument, one way only.
bulk() { # NAME [oneway]
    local before after start end i mbs cpu
    : > "$out/$1-oneway.runs"
    : > "$out/$1.runs"
    for i in $(seq 1 "$reps"); do
        before=$(cpu_ticks "$proxy_pid")
        start=$(date +%s%N)
        taskset -c $load_cpu "$loadgen" bulk --one-way --proxy "127.0.0.1:$proxy_port" --target "$target" \
            --auth basic:u:p --tunnels 1 --bytes "$bulk" --seconds 120 > "$out/$1-oneway.$i.json"
        end=$(date +%s%N)
        after=$(cpu_ticks "$proxy_pid")
        echo "$(json "$out/$1-oneway.$i.json" 'd["mbPerSecondOneWay"]')" \
            "$(((after - before) * 100 * 1000000000 / hz / (end - start)))" "$i" >> "$out/$1-oneway.runs"
        [ $# -gt 1 ] && continue
        taskset -c $load_cpu "$loadgen" bulk --proxy "127.0.0.1:$proxy_port" --target "$target" --auth basic:u:p \
            --tunnels 1 --bytes "$bulk" --seconds 120 > "$out/$1.$i.json"
        echo "$(json "$out/$1.$i.json" 'd["mbPerSecondEachWay"]')" 0 "$i" >> "$out/$1.runs"
    done
    read -r mbs cpu i < <(sort -n "$out/$1-oneway.runs" | sed -n "$(((reps + 1) / 2))p")
    cp "$out/$1-oneway.$i.json" "$out/$1-oneway.json"
    echo "$cpu" > "$out/$1-oneway.cpu"
    mbs=-
    if [ $# -lt 2 ]; then
        read -r mbs cpu i < <(sort -n "$out/$1.runs" | sed -n "$(((reps + 1) / 2))p")
        cp "$out/$1.$i.json" "$out/$1.json"
    fi
    echo "run-bench: $1: $(json "$out/$1-oneway.json" 'd["mbPerSecondOneWay"]') MB/s one way (proxy CPU" \
        "$(cat "$out/$1-oneway.cpu") %; median of $(cut -d' ' -f1 "$out/$1-oneway.runs" | tr '\n' ' ')), $mbs MB/s each way"
}

common=(rate --target "$target" --auth basic:u:p --concurrency "$concurrency")

echo "run-bench: RelayPro"
start_relaypro
measure relaypro-full "${common[@]}" --proxy "127.0.0.1:$proxy_port"
measure relaypro-resumed "${common[@]}" --proxy "127.0.0.1:$proxy_port" --resume
measure relaypro-c1 rate --target "$target" --auth basic:u:p --concurrency 1 --proxy "127.0.0.1:$proxy_port" --resume
idle_rss relaypro-idle
bulk relaypro-bulk
stop_proxy

echo "run-bench: Squid"
start_squid
measure squid-full "${common[@]}" --proxy "127.0.0.1:$proxy_port"
measure squid-resumed "${common[@]}" --proxy "127.0.0.1:$proxy_port" --resume
idle_rss squid-idle
bulk squid-bulk
stop_proxy

echo "run-bench: the TLS floor and the direct baseline"
start_floor
measure floor-full rate --tls-only --proxy "127.0.0.1:$proxy_port" --concurrency "$concurrency"
stop_proxy
start_floor --tickets
measure floor-resumed rate --tls-only --proxy "127.0.0.1:$proxy_port" --concurrency "$concurrency" --resume
stop_proxy
# The relay floor: the same handshake plus the least a CONNECT relay does (a head read, the
# upstream connection, the exchange copied through it, both closed): what the TLS floor lacks.
start_floor --relay "$target"
measure relayfloor-full "${common[@]}" --proxy "127.0.0.1:$proxy_port"
stop_proxy
# The same with tickets: what a resumed tunnel costs at least (the restart storm's case).
start_floor --tickets --relay "$target"
measure relayfloor-resumed "${common[@]}" --proxy "127.0.0.1:$proxy_port" --resume
stop_proxy
# The relay floor per byte: a thread per connection, blocking sockets, records read into 64 KiB
# and sent on in one send() (what RelayPro's tunnel does, without the event loop and the rest).
# One way only: a blocking relay with one thread per connection could deadlock on an echo.
start_floor --relay "$target" --blocking
bulk relayfloor-bulk oneway
stop_proxy
# The other build's relay and floors, same generator, same target (--compare).
if [ -n "$compare" ]; then
    echo "run-bench: RelayPro and the floors of $compare"
    relaypro=$compare/supervisor/relaypro floor=$compare/test/tls_floor
    start_relaypro
    measure cmp-relaypro-full "${common[@]}" --proxy "127.0.0.1:$proxy_port"
    measure cmp-relaypro-resumed "${common[@]}" --proxy "127.0.0.1:$proxy_port" --resume
    idle_rss cmp-relaypro-idle
    bulk cmp-relaypro-bulk
    stop_proxy
    start_floor
    measure cmp-floor-full rate --tls-only --proxy "127.0.0.1:$proxy_port" --concurrency "$concurrency"
    stop_proxy
    start_floor --tickets
    measure cmp-floor-resumed rate --tls-only --proxy "127.0.0.1:$proxy_port" --concurrency "$concurrency" --resume
    stop_proxy
    start_floor --relay "$target"
    measure cmp-relayfloor-full "${common[@]}" --proxy "127.0.0.1:$proxy_port"
    stop_proxy
    start_floor --relay "$target" --blocking
    bulk cmp-relayfloor-bulk oneway
    stop_proxy
    relaypro=$build/supervisor/relaypro floor=$build/test/tls_floor
fi
# Which OpenSSL a build's relay runs: its own report, else (a build before `version --verbose`)
# the system's shared library.
openssl_of() {
    "$1/supervisor/relaypro" version --verbose 2>/dev/null | sed -n 's/^  OpenSSL \([^ ]*\) (\(linked statically\).*/\1 (\2)/p; s/^  OpenSSL \([^ ]*\) (shared.*/\1 (shared)/p' | grep . ||
        echo "$(dpkg-query -W -f '${Version}' libssl3 2>/dev/null) (shared, Debian 12)"
}
openssl_of "$build" > "$out/openssl.txt"
[ -n "$compare" ] && openssl_of "$compare" > "$out/cmp-openssl.txt"
taskset -c $load_cpu "$loadgen" rate --direct --target "$target" --concurrency 1 --count "$tunnels" > "$out/direct-c1.json"
taskset -c $load_cpu "$loadgen" bulk --direct --target "$target" --tunnels 1 --bytes "$bulk" --seconds 120 > "$out/direct-bulk.json"
taskset -c $load_cpu "$loadgen" bulk --direct --one-way --target "$target" --tunnels 1 --bytes "$bulk" --seconds 120 \
    > "$out/direct-bulk-oneway.json"

# --- the table
/usr/bin/python3 - "$out" > "$out/results.md" <<'PY'
import json, os, sys
out = sys.argv[1]
def j(n): return json.load(open(os.path.join(out, n + ".json")))
def cpu(n): return float(open(os.path.join(out, n + ".cpu")).read())
rows = []
def row(what, name, extra=""):
    d = j(name)
    t = d["latencyUs"]["total"]
    rows.append(f"| {what} | {cpu(name):.0f} | {d['tunnelsPerSecond']:.0f} | {t['p50']/1000:.2f} | {t['p99']/1000:.2f} | {extra} |")
print("| run | CPU µs per tunnel | tunnels/s | p50 ms | p99 ms | note |")
print("| --- | --- | --- | --- | --- | --- |")
row("RelayPro, full TLS 1.3 handshake", "relaypro-full")
row("RelayPro, resumed (ticket)", "relaypro-resumed", f"{j('relaypro-resumed')['resumed']} resumed")
row("Squid, full TLS 1.3 handshake", "squid-full")
row("Squid, resumed", "squid-resumed", f"{j('squid-resumed')['resumed']} resumed")
row("TLS floor, full handshake only", "floor-full")
row("TLS floor, resumed handshake only", "floor-resumed", f"{j('floor-resumed')['resumed']} resumed")
row("relay floor: handshake + CONNECT + upstream leg, nothing else", "relayfloor-full")
row("relay floor, resumed", "relayfloor-resumed", f"{j('relayfloor-resumed')['resumed']} resumed")
print("\n".join(rows))
print()
rf, sf, ff, lf = cpu("relaypro-full"), cpu("squid-full"), cpu("floor-full"), cpu("relayfloor-full")
print(f"- CPU per new tunnel: RelayPro / Squid = {rf/sf:.2f}; RelayPro / TLS floor = {rf/ff:.2f}; "
      f"RelayPro / relay floor = {rf/lf:.2f} (relay floor / TLS floor = {lf/ff:.2f}); "
      f"resumed / full (RelayPro) = {cpu('relaypro-resumed')/rf:.2f}; resumed, RelayPro / relay floor = "
      f"{cpu('relaypro-resumed')/cpu('relayfloor-resumed'):.2f}")
ri, si = j("relaypro-idle"), j("squid-idle")
print(f"- RSS per idle TLS tunnel ({ri['held']} tunnels): RelayPro {ri['rssKiBPerTunnel']:.1f} KiB "
      f"({ri['fdsPerTunnel']:.2f} fds), Squid {si['rssKiBPerTunnel']:.1f} KiB; ratio {ri['rssKiBPerTunnel']/si['rssKiBPerTunnel']:.2f}")
rb, sb, db = j("relaypro-bulk-oneway"), j("squid-bulk-oneway"), j("direct-bulk-oneway")
rcpu, scpu = (open(os.path.join(out, n + "-bulk-oneway.cpu")).read().strip() for n in ("relaypro", "squid"))
print(f"- One tunnel, {rb['bytesOneWay']>>20} MiB one way: RelayPro {rb['mbPerSecondOneWay']:.0f} MB/s (proxy CPU {rcpu} %), "
      f"Squid {sb['mbPerSecondOneWay']:.0f} MB/s (proxy CPU {scpu} %), direct {db['mbPerSecondOneWay']:.0f} MB/s; "
      f"RelayPro / Squid = {rb['mbPerSecondOneWay']/sb['mbPerSecondOneWay']:.2f}; per second of proxy CPU "
      f"{(rb['mbPerSecondOneWay']/float(rcpu))/(sb['mbPerSecondOneWay']/float(scpu)):.2f}")
fb = j("relayfloor-bulk-oneway")
fcpu = open(os.path.join(out, "relayfloor-bulk-oneway.cpu")).read().strip()
print(f"- The relay floor per byte (tls_floor --relay --blocking), one way: {fb['mbPerSecondOneWay']:.0f} MB/s "
      f"(CPU {fcpu} %); relay floor / Squid = {fb['mbPerSecondOneWay']/sb['mbPerSecondOneWay']:.2f}, "
      f"RelayPro / relay floor = {rb['mbPerSecondOneWay']/fb['mbPerSecondOneWay']:.2f}")
rb, sb, db = j("relaypro-bulk"), j("squid-bulk"), j("direct-bulk")
print(f"- One tunnel, {rb['bytesEachWay']>>20} MiB each way at once: RelayPro {rb['mbPerSecondEachWay']:.0f} MB/s, "
      f"Squid {sb['mbPerSecondEachWay']:.0f} MB/s, direct {db['mbPerSecondEachWay']:.0f} MB/s; RelayPro / Squid = "
      f"{rb['mbPerSecondEachWay']/sb['mbPerSecondEachWay']:.2f}")
c1, d1 = j("relaypro-c1")["latencyUs"], j("direct-c1")["latencyUs"]
print(f"- Added latency at C=1 (resumed TLS): RelayPro p99 {c1['total']['p99']/1000:.2f} ms (TLS {c1['tls']['p99']/1000:.2f} ms) "
      f"vs direct p99 {d1['total']['p99']/1000:.2f} ms")
if os.path.exists(os.path.join(out, "cmp-openssl.txt")):
    mine, other = (open(os.path.join(out, n)).read().strip() for n in ("openssl.txt", "cmp-openssl.txt"))
    print()
    print(f"Side by side, same run and generator: this build (OpenSSL {mine}) and the other (OpenSSL {other}).")
    print()
    print("| row | this build | the other | this / other |")
    print("| --- | --- | --- | --- |")
    def pair(what, mine_value, other_value, unit):
        print(f"| {what} | {mine_value:.1f} {unit} | {other_value:.1f} {unit} | {mine_value/other_value:.2f} |")
    for what, name in (("CPU per new tunnel, full handshake", "relaypro-full"), ("CPU per new tunnel, resumed", "relaypro-resumed"),
                       ("TLS floor, full handshake", "floor-full"), ("TLS floor, resumed", "floor-resumed"),
                       ("relay floor, full handshake", "relayfloor-full")):
        pair(what, cpu(name), cpu("cmp-" + name), "µs")
    pair("RSS per idle tunnel", j("relaypro-idle")["rssKiBPerTunnel"], j("cmp-relaypro-idle")["rssKiBPerTunnel"], "KiB")
    pair("one tunnel, one way", j("relaypro-bulk-oneway")["mbPerSecondOneWay"], j("cmp-relaypro-bulk-oneway")["mbPerSecondOneWay"], "MB/s")
    pair("one tunnel, each way at once", j("relaypro-bulk")["mbPerSecondEachWay"], j("cmp-relaypro-bulk")["mbPerSecondEachWay"], "MB/s")
    pair("relay floor per byte, one way", j("relayfloor-bulk-oneway")["mbPerSecondOneWay"], j("cmp-relayfloor-bulk-oneway")["mbPerSecondOneWay"], "MB/s")
PY
# --- the chart (gnuplot, SVG): CPU per tunnel, RSS per idle tunnel, one tunnel's MB/s
/usr/bin/python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
def j(n): return json.load(open(os.path.join(out, n + ".json")))
def cpu(n): return float(open(os.path.join(out, n + ".cpu")).read())
with open(os.path.join(out, "chart-cpu.dat"), "w") as f:
    for label, name in (("RelayPro", "relaypro"), ("Squid", "squid"), ("TLS-floor", "floor")):
        f.write(f"{label} {cpu(name + '-full'):.0f} {cpu(name + '-resumed'):.0f}\n")
    f.write(f"relay-floor {cpu('relayfloor-full'):.0f} 0\n")
with open(os.path.join(out, "chart-idle.dat"), "w") as f:
    for label, name in (("RelayPro", "relaypro-idle"), ("Squid", "squid-idle")):
        f.write(f"{label} {j(name)['rssKiBPerTunnel']:.1f}\n")
with open(os.path.join(out, "chart-bulk.dat"), "w") as f:
    for label, name in (("RelayPro", "relaypro-bulk"), ("Squid", "squid-bulk"), ("relay-floor", "relayfloor-bulk"),
                        ("direct", "direct-bulk")):
        each = j(name)['mbPerSecondEachWay'] if os.path.exists(os.path.join(out, name + ".json")) else 0
        f.write(f"{label} {j(name + '-oneway')['mbPerSecondOneWay']:.0f} {each:.0f}\n")
PY
gnuplot <<GNUPLOT
set terminal svg size 1200,420 font "sans,12" background rgb "white"
set output "$out/chart.svg"
set multiplot layout 1,3 title "RelayPro, Squid and the TLS floor ($(date -u +%Y-%m-%d), $(nproc) vCPU, loopback)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set key below
set yrange [0:*]
set grid ytics
set title "CPU per new tunnel (µs, lower is better)"
plot "$out/chart-cpu.dat" using 2:xtic(1) title "full TLS 1.3", "" using 3 title "resumed"
unset key
set title "RSS per idle TLS tunnel (KiB, lower is better)"
plot "$out/chart-idle.dat" using 2:xtic(1) lc rgb "#4477aa"
set key below
set title "One tunnel, MB/s"
plot "$out/chart-bulk.dat" using 2:xtic(1) title "one way" lc rgb "#228833", "" using 3 title "each way, both at once" lc rgb "#ccbb44"
unset multiplot
GNUPLOT
cat "$out/results.md"
echo "run-bench: the chart is $out/chart.svg"
if [ $publish = yes ]; then
    mkdir -p "$top/docs/bench"
    cp "$out/results.md" "$out/chart.svg" "$top/docs/bench/"
    echo "run-bench: copied results.md and chart.svg to docs/bench/"
fi
