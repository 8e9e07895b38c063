#!/bin/bash
# 100,000 concurrent idle TLS tunnels through one RelayPro on this box (issue 8), in a network
# namespace of its own so that its sysctls change nothing outside it.
#
# Limits and how this run lifts them:
# - every process may hold at most 20,000 descriptors (a hard limit here): a tunnel takes two of
#   the relay's (client + upstream), so the relay runs WORKERS workers (default 12; 11 is the
#   least that can hold 100,000 and does here, the supervisor keeping the workers' counts within a
#   few per cent of each other — BENCHMARKS.md has the figures);
#   the generator runs GEN processes and the echo target ECHO processes per port;
# - one source address reaches one destination address and port over the ephemeral range only
#   (32768-60999 by default, ~28k connections): the namespace widens ip_local_port_range to
#   1024-65535, the generator's processes bind to 127.0.0.2-127.0.0.5 in turn, and the tunnels
#   go to the console's three ports (443, 80, 4222) in turn, so no (source, destination) pair
#   needs more than ~33k ports.
#
#   test/bench/run-100k.sh BUILD_DIR [TUNNELS]     (root; writes BUILD_DIR/bench-100k/)
set -euo pipefail
build=$(cd "${1:?usage: run-100k.sh BUILD_DIR [TUNNELS]}" && pwd)
tunnels=${2:-100000}
workers=${WORKERS:-12} gen=${GEN:-8} echo_per_port=${ECHO:-2}
out=$build/bench-100k
ns=relaypro100k$$

if [ "${RELAYPRO_IN_NETNS:-}" != 1 ]; then
    [ "$(id -u)" = 0 ] || { echo "run-100k: needs root (network namespace)" >&2; exit 2; }
    rm -rf "$out"
    mkdir -p "$out"
    ip netns add "$ns"
    trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
    RELAYPRO_IN_NETNS=1 ip netns exec "$ns" "$0" "$@"
    exit $?
fi

# --- inside the namespace
ip link set lo up
sysctl -q -w net.ipv4.ip_local_port_range="1024 65535"
sysctl -q -w net.core.somaxconn=4096
ulimit -n 20000
loadgen=$build/test/loadgen
relaypro=$build/supervisor/relaypro
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$out/key.pem" -out "$out/cert.pem" 2>/dev/null
printf 'u:p\n' > "$out/passwords.txt"

for port in 443 80 4222; do
    "$loadgen" echo --listen "127.0.0.1:$port" --processes "$echo_per_port" > "$out/echo-$port.out" 2>&1 &
    pids+=($!)
done
cat > "$out/config.yml" <<EOF
consoleAddress: "127.0.0.1"
organizationId: 1
serverName: 127.0.0.1
httpsProxy:
  listen: "127.0.0.1:8443"
  certFile: $out/cert.pem
  keyFile: $out/key.pem
passwordFile: $out/passwords.txt
workers: $workers
EOF
: > "$out/environment.conf"
RELAYPRO_ENV_FILE=$out/environment.conf "$relaypro" run --config "$out/config.yml" --user root \
    > "$out/relaypro.out" 2> "$out/relaypro.err" &
relay=$!
pids+=($relay)
for _ in $(seq 1 200); do
    (exec 3<> /dev/tcp/127.0.0.1/8443) 2> /dev/null && break
    sleep 0.05
done
for _ in $(seq 1 200); do
    [ "$(pgrep -c -P "$relay" || true)" -ge "$workers" ] && break
    sleep 0.05
done

# While the tunnels are held: the fullest sample of descriptors per worker (the spread of
# accepted connections over the workers decides how close to 11 workers the run can get).
(
    best=0
    while sleep 2; do
        sample=$(for w in $(pgrep -P "$relay"); do echo "$w $(ls /proc/"$w"/fd 2> /dev/null | wc -l)"; done)
        total=$(echo "$sample" | awk '{ s += $2 } END { print s + 0 }')
        if [ "$total" -gt "$best" ]; then
            best=$total
            echo "$sample" > "$out/per-worker.txt"
        fi
    done
) &
sampler=$!
pids+=($sampler)

start=$(date +%s)
"$loadgen" idle --proxy 127.0.0.1:8443 --target 127.0.0.1:443,127.0.0.1:80,127.0.0.1:4222 \
    --source 127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5 --auth basic:u:p --tunnels "$tunnels" \
    --processes "$gen" --concurrency 200 --hold 10 --interval 5 --measure "$relay" > "$out/idle.json" || true
end=$(date +%s)
kill "$sampler" 2> /dev/null || true
/usr/bin/python3 - "$out/idle.json" "$workers" "$gen" "$((end - start))" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"run-100k: {d['held']} of {d['started']} tunnels held at once ({d['failed']} failed: {d['errors']}), "
      f"{sys.argv[2]} workers, {sys.argv[3]} generator processes, {sys.argv[4]} s in all; "
      f"RelayPro {d['rssKiBPerTunnel']:.2f} KiB and {d['fdsPerTunnel']:.2f} descriptors per tunnel "
      f"(RSS {d['rssKiBBefore']/1024:.0f} -> {d['rssKiBAfter']/1024:.0f} MiB)")
PY
echo "run-100k: descriptors per worker (pid count) at the fullest sample:"
sort -k2 -n "$out/per-worker.txt" 2> /dev/null | tr '\n' ';' || true
echo
