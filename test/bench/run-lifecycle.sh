#!/bin/bash
# Lifecycle at scale (issue 19): a fleet of Responders (`loadgen fleet`: a token each from the
# token endpoint with the console simulator behind it, one long-lived tunnel with NATS-like
# traffic, reconnects with backoff and TLS resumption) through one RelayPro on this box, in a
# network namespace of its own (its sysctls change nothing outside it), as run-100k.sh does.
#
#   test/bench/run-lifecycle.sh BUILD_DIR [RESPONDERS] [SCENARIOS]     (root)
#
# SCENARIOS, comma-separated (default all). upgrade, spread and storm share one fleet of
# RESPONDERS (its cold start, a token each through the relay and the console simulator, is the
# slow part), in this order:
#   upgrade   `relaypro upgrade` with every tunnel open and new tunnels arriving at ARRIVAL a
#             second (loadgen steady, Basic): tunnels cut before the drain deadline, new-tunnel
#             failures, the CONNECT latency before / during / after, peak RSS and descriptors of
#             both generations, the time the upgrade takes, the workers' loop lag (the
#             relaypro_worker_loop_lag_seconds histogram over the upgrade).
#   spread    the same upgrade's drain ending (limits.drainTimeout DRAIN) with the old generation
#             closing what it holds over limits.drainSpread SPREAD: the tunnels re-established
#             per second against the even rate.
#   storm     a restart (stop, then start, as systemctl restart does; shutdownGrace 0) with every
#             Responder reconnecting at once with its token and ticket: time to 50 / 90 / 100 %,
#             console calls (none expected), resumed and full handshakes; once for each of
#             STORM_BACKLOGS (limits.listenBacklog; default "128 4096"). "floor" there is a storm
#             against test/bench/tls_floor in the relay's place (start_floor: the least a relay
#             does for a resumed tunnel), the same fleet, in the same run; the relay then returns
#             (untimed) unless the floor was the last storm.
#   overload  new tunnels (full handshakes, Basic) offered at 0.5× to 4× of what the relay
#             serves, one worker on RELAY_CPU % of core 0 (a CPU cgroup; default 15) and the
#             generator on core 1 (a client's full handshake costs more than the relay's: with the
#             relay on a whole core the generator cannot offer 4×), each attempt given up after
#             GIVEUP seconds without progress: goodput and p99 with limits.maxHandshakes 0 (no
#             bound) and with BOUND (default auto, also the fleet runs'). Per step also how busy
#             core 1 was (the generator's, with the echo targets and the simulator). After the
#             curve, the floor under refusing: test/bench/refusal_floor in the relay's place and
#             share, its connections gathered as in front of the throttled worker, offered what
#             the relay refused or shed at the top factor and then twice that (the report takes a
#             refusal's cost apart from a batch's). Throughout,
#             test/bench/speed_probe times a fixed unit of work on core 0, and the report also
#             gives the goodput of each step that used the relay's whole share scaled to the
#             run's usual speed.
#   paired    the overload goal read side by side (not in the default list): two identical
#             relays, one worker each in a CPU cgroup of RELAY_CPU % of core 0, each with its own
#             generator on core 1; every round offers PAIR_FACTORS' low factor ("1.5 4": the peak)
#             to one and its high factor to the other for STEP_SECONDS, and the next round swaps
#             them. test/bench/overload_paired.py gives 4× against the peak with its interval,
#             by the rule in its docstring (fixed before the first such run). SOFTIRQ_TRACE=N:
#             `perf record` of core 0's softirqs for N seconds of each round (from 5 s in), so
#             that the report can say which relay paid for them on the way out of interrupts.
# Writes BUILD_DIR/bench-lifecycle/: the fleet's timelines, every run's JSON, results.md and the
# charts (gnuplot). Environment: WORKERS (default 12), GEN (fleet processes, 8), ECHO (echo
# processes per port, 2), ARRIVAL (200), RAMP (fleet starts per second, 3000), DRAIN (150s),
# SPREAD (60s), GIVEUP (10), STEP_SECONDS (overload step, 20), FACTORS (the overload's steps,
# "0.5 1 1.5 2 3 4"), ROUNDS (passes over FACTORS, in turn; the report takes medians: 3), PROFILE
# (1: one more run of the top factor, or of each of PROFILE_FACTORS, under perf, left out of the
# medians; the report gives the share of the relay's CPU that refusing took; 0: none),
# CAPACITY_CONCURRENCY (the closed loops that measure capacity, the best taken: "32 64 128"), RELAY_CPU (15), OVERLOAD_BACKLOG (its listenBacklog, 4096), STORM_BACKLOGS
# ("128 4096"), CONNECT_CONCURRENCY (the fleet's tunnels connecting at once per process, 0: no
# limit; loadgen fleet --connect-concurrency), INTERVAL (8 bytes each way per
# tunnel every INTERVAL seconds, 10), SOURCE_PORTS (LOW-HIGH: the relay's limits.sourcePorts and
# the fleet's own source ports, with the namespace's ip_local_port_range below LOW; default none:
# connect() chooses everywhere), RELAY_BINARY (the relay to install instead of BUILD_DIR's; e.g.
# the test build's relaypro-test with RELAYPRO_TEST_HOOKS=1 RELAYPRO_TEST_ADMISSION_TRACE=1, whose
# workers log every admission window they judge).
set -euo pipefail
build=$(cd "${1:?usage: run-lifecycle.sh BUILD_DIR [RESPONDERS] [SCENARIOS]}" && pwd)
responders=${2:-100000}
scenarios=${3:-upgrade,spread,storm,overload}
workers=${WORKERS:-12} gen=${GEN:-8} echo_per_port=${ECHO:-2}
arrival=${ARRIVAL:-200} ramp=${RAMP:-3000} drain=${DRAIN:-150s} spread=${SPREAD:-60s}
giveup=${GIVEUP:-10} step_seconds=${STEP_SECONDS:-20} interval=${INTERVAL:-10} bound=${BOUND:-auto}
relay_cpu=${RELAY_CPU:-15} connect_concurrency=${CONNECT_CONCURRENCY:-0} rounds=${ROUNDS:-3}
profile=${PROFILE:-1}
source_ports=${SOURCE_PORTS:-}
top=$(cd "$(dirname "$0")/../.." && pwd)
out=$build/bench-lifecycle
ns=relayprolc$$

if [ "${RELAYPRO_IN_NETNS:-}" != 1 ]; then
    [ "$(id -u)" = 0 ] || { echo "run-lifecycle: needs root (network namespace)" >&2; exit 2; }
    rm -rf "$out"
    mkdir -p "$out"
    ip netns add "$ns"
    trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
    RELAYPRO_IN_NETNS=1 ip netns exec "$ns" "$0" "$@"
    exit $?
fi

# --- inside the namespace
ip link set lo up
if [ -n "$source_ports" ]; then
    sysctl -q -w net.ipv4.ip_local_port_range="1024 $((${source_ports%-*} - 1))"
else
    sysctl -q -w net.ipv4.ip_local_port_range="1024 65535"
fi
sysctl -q -w net.core.somaxconn=4096
ulimit -n 20000
loadgen=$build/test/loadgen
pids=()
relay=""
cpu_cgroup=""
paired_groups=()
cleanup() {
    for p in "${pids[@]}" $relay; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -z "$cpu_cgroup" ] || rmdir "$cpu_cgroup" 2> /dev/null || true
    local g
    for g in "${paired_groups[@]}"; do rmdir "$g" 2> /dev/null || true; done
    [ ! -s "$out/cgroup.enabled" ] || echo -cpu > "$(cat "$out/cgroup.enabled")/cgroup.subtree_control" 2> /dev/null || true
}
trap cleanup EXIT
log() { printf 'run-lifecycle: %s\n' "$*" >&2; }
wait_for() { # SECONDS COMMAND...: polls every 0.1 s, for SECONDS by the clock (on a saturated
    # box each poll takes longer than its 0.1 s)
    local end=$((SECONDS + $1))
    shift
    while [ "$SECONDS" -lt "$end" ]; do "$@" && return 0; sleep 0.1; done
    return 1
}

# The relay's certificate, the console simulator (fleetPrefix: fleet-N / cred-N are valid) on
# 127.0.0.1:443, echo targets on the console's other two ports (the tunnels' targets).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$out/key.pem" -out "$out/cert.pem" 2> /dev/null
printf 'u:p\n' > "$out/passwords.txt"
mkdir -p "$out/console" "$out/install"
echo '{"fleetPrefix": "fleet-"}' > "$out/console/state.json"
/usr/bin/python3 "$top/test/tools/console_sim.py" --dir "$out/console" --host 127.0.0.1 --port 443 \
    > "$out/console.out" 2>&1 &
pids+=($!)
console_pid=$!
echo_pids=()
for port in 80 4222; do
    "$loadgen" echo --listen "127.0.0.1:$port" --processes "$echo_per_port" > "$out/echo-$port.out" 2>&1 &
    pids+=($!)
    echo_pids+=($!)
done
# Where the CPU goes, once a second: "UNIX-TIME BOX-BUSY BOX-ALL RELAY FLEET ECHO CONSOLE", clock
# ticks since boot (the box: /proc/stat; the others: user + system of a process and its children
# alive then; RELAY is the generation running when the sampler started, which a restart ends:
# the report takes the relay as what the box spent beyond the others), appended to FILE.
cpu_sampler() { # FILE
    local hz file=$1
    hz=$(getconf CLK_TCK)
    echo "# CLK_TCK $hz" >> "$file"
    while sleep 1; do
        {
            printf '%s ' "$(date +%s.%N)"
            # busy: user nice system irq softirq (steal is another guest's); all: with idle, iowait
            awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat | tr '\n' ' '
            local group
            for group in "${relay:-}" "${fleet:-}" "${echo_pids[*]}" "$console_pid"; do
                local p all=() ticks=0
                for p in $group; do all+=("$p" $(pgrep -P "$p" | tr '\n' ' ' || true)); done
                for p in "${all[@]}"; do
                    local st
                    { read -r st < "/proc/$p/stat"; } 2> /dev/null || continue
                    st=${st##*) }
                    set -- $st
                    [ $# -ge 13 ] || continue
                    ticks=$((ticks + ${12} + ${13}))
                done
                printf '%s ' "$ticks"
            done
            echo
        } >> "$file"
    done
}
wait_for 30 test -s "$out/console/ca.pem" || { cat "$out/console.out"; exit 1; }
wait_for 30 grep -q listening "$out/console.out" || { cat "$out/console.out"; exit 1; }

cp "${RELAY_BINARY:-$build/supervisor/relaypro}" "$out/install/relaypro"
: > "$out/environment.conf"
# The relay: registered to the simulator (its test relay credential), Bearer tokens for the
# fleet, Basic for the steady generator; metrics on loopback for the loop-lag histogram.
write_config() { # EXTRA-LIMITS-LINES
    {
        cat <<EOF
consoleAddress: "127.0.0.1"
organizationId: 1
relayId: 3
registeredTo: "127.0.0.1"
securityToken: "st-9f3k2"
serverName: 127.0.0.1
httpsProxy:
  listen: "127.0.0.1:8443"
  certFile: $out/cert.pem
  keyFile: $out/key.pem
passwordFile: $out/passwords.txt
workers: $workers
metrics:
  listen: "127.0.0.1:9464"
limits:
  tokenRequestsPerMinute: 1000000
  maxHandshakes: $bound
EOF
        [ -z "$source_ports" ] || echo "  sourcePorts: $source_ports"
        printf '%s' "${1:-}"
        echo "consoleCACert: |"
        sed 's/^/  /' "$out/console/ca.pem"
    } > "$out/config.yml"
}
start_relay() {
    RELAYPRO_ENV_FILE=$out/environment.conf RELAYPRO_INSTALLED_BINARY=$out/install/relaypro \
        "$out/install/relaypro" run --config "$out/config.yml" --user root >> "$out/relaypro.out" 2>> "$out/relaypro.err" &
    relay=$!
    wait_for 60 bash -c "exec 3<> /dev/tcp/127.0.0.1/8443" 2> /dev/null || { tail "$out/relaypro.err"; exit 1; }
    wait_for 60 sh -c "[ \$(pgrep -c -P $relay) -ge $workers ]"
}
# The storm's floor in the relay's place (STORM_BACKLOGS with "floor"): test/bench/tls_floor with
# the relay's CA bundle (it resumes the fleet's tickets), certificate and source ports, as many
# processes as the relay has workers on one listening socket (backlog 4,096), checking each Bearer
# token with RelayPro's verifier and relaying each CONNECT to the address it names. No other
# parsing, no policy, logs, metrics or admission.
start_floor() { # LABEL
    # Each process holds at most (descriptor limit − 64) / 2 tunnels (tls_floor --processes).
    local room=$((($(ulimit -Hn) - 64) / 2 * workers))
    [ "$room" -ge "$responders" ] || { log "the floor's $workers processes hold $room tunnels, not $responders"; exit 1; }
    "$build/test/tls_floor" --listen 127.0.0.1:8443 --cert "$out/cert.pem" --key "$out/key.pem" \
        --ca-bundle "$out/private/ca-bundle.pem" --verify-tokens 1 --relay head --processes "$workers" \
        ${source_ports:+--source-ports "$source_ports"} > "$out/floor-$1.out" 2> "$out/floor-$1.err" &
    relay=$!
    wait_for 60 grep -qs listening "$out/floor-$1.out" || { cat "$out/floor-$1.err"; exit 1; }
}
# Ends the floor; a serving process that ended unasked (tls_floor exits 1 and says so) makes the
# storm's figure no floor's: STORM.invalid.
stop_floor() { # LABEL
    local rc=0
    kill -TERM "$relay" 2> /dev/null || true
    wait "$relay" 2> /dev/null || rc=$?
    relay=""
    if [ "$rc" != 0 ] || [ -s "$out/floor-$1.err" ]; then
        log "the floor ended with status $rc: $(cat "$out/floor-$1.err")"
        echo "status $rc: $(cat "$out/floor-$1.err")" > "$out/storm-$1.invalid"
    fi
}
stop_relay() {
    kill -TERM "$relay" 2> /dev/null || true
    wait "$relay" 2> /dev/null || true
    relay=""
}
cli() { RELAYPRO_ENV_FILE=$out/environment.conf "$out/install/relaypro" "$@" --config "$out/config.yml"; }
# The relay's processes (supervisor and workers, every generation): RSS KiB and descriptors,
# summed; the peak of each is kept in FILE while the sampler runs.
sample_peak() { # FILE
    local rss fds best_rss=0 best_fds=0
    while sleep 0.5; do
        [ -n "$relay" ] || continue
        read -r rss fds < <(for p in $relay $(pgrep -P "$relay"); do
            echo "$(awk '/VmRSS/ {print $2}' /proc/"$p"/status 2> /dev/null || echo 0) $(ls /proc/"$p"/fd 2> /dev/null | wc -l)"
        done | awk '{ r += $1; f += $2 } END { print r + 0, f + 0 }')
        [ "$rss" -gt "$best_rss" ] && best_rss=$rss
        [ "$fds" -gt "$best_fds" ] && best_fds=$fds
        echo "$best_rss $best_fds" > "$1"
    done
}
# The loop-lag histogram's buckets as "le count" lines.
loop_lag() { curl -s http://127.0.0.1:9464/metrics | awk -F'[{}" ]+' '/^relaypro_worker_loop_lag_seconds_bucket/ { print $3, $NF }'; }
fleet_start() { # NAME [ARGS...]: the fleet in the background; its timeline in NAME.timeline
    local name=$1
    shift
    "$loadgen" fleet --proxy 127.0.0.1:8443 --target 127.0.0.1:4222,127.0.0.1:80 \
        --source 127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5 --responders "$responders" --processes "$gen" \
        --ramp "$ramp" --interval "$interval" --seconds 3000 --console-journal "$out/console/journal.jsonl" \
        --timeline "$out/$name.timeline" ${source_ports:+--source-port-low ${source_ports%-*} --source-port-high ${source_ports#*-}} \
        --connect-concurrency "$connect_concurrency" \
        "$@" > "$out/$name.fleet.json" 2> "$out/$name.fleet.err" &
    fleet=$!
    pids+=($fleet)
}
fleet_event() { grep -q "\"event\":\"$1\"" "$out/$2.timeline" 2> /dev/null; }
fleet_stop() {
    kill -TERM "$fleet" 2> /dev/null || true
    wait "$fleet" 2> /dev/null || true
}
steady() { # NAME SECONDS: new tunnels at $arrival a second (Basic), the JSON in NAME.json
    "$loadgen" steady --proxy 127.0.0.1:8443 --target 127.0.0.1:4222 --source 127.0.0.6 --auth basic:u:p \
        --arrival "$arrival" --seconds "$2" --processes 1 > "$out/$1.json" 2> "$out/$1.err" || true
}

# --- one fleet for upgrade, spread and storm (its cold start, a token each through the relay and
# the console simulator, is the slow part: a few hundred a second here)
relay_log_time() { # MSG: the first time (Unix seconds) the relay's log says MSG
    /usr/bin/python3 - "$out/logs/relaypro.log.txt" "$1" <<'PY'
import datetime, json, sys
for line in open(sys.argv[1]):
    try:
        d = json.loads(line)
    except ValueError:
        continue
    if d.get("msg") == sys.argv[2]:
        print(datetime.datetime.fromisoformat(d["time"].replace("Z", "+00:00")).timestamp())
        break
PY
}
recovered_count() { grep -c '"event":"recovered"' "$out/fleet.timeline" 2> /dev/null || true; }
# Whether the fleet's latest whole second had every tunnel open.
all_open() { grep '"second"' "$out/fleet.timeline" 2> /dev/null | tail -n 1 | grep -q "\"open\":$responders,"; }
scenario_fleet() {
    write_config "  drainTimeout: $drain
  drainSpread: $spread
  shutdownGrace: 0s
  listenBacklog: 4096
"
    cp "${RELAY_BINARY:-$build/supervisor/relaypro}" "$out/install/relaypro"
    start_relay
    fleet_start fleet
    wait_for 1800 fleet_event allOpen fleet || { log "the fleet did not open every tunnel"; tail -3 "$out/fleet.timeline"; }
    log "$responders tunnels open"
    if [[ ,$scenarios, == *,upgrade,* || ,$scenarios, == *,spread,* ]]; then
        sample_peak "$out/upgrade.peak" &
        local sampler=$!
        pids+=($sampler)
        steady upgrade-before 20
        loop_lag > "$out/upgrade.lag-before"
        steady upgrade-during 40 &
        local during=$!
        sleep 5
        cp "$build/supervisor/relaypro-next" "$out/install/relaypro.new" && mv "$out/install/relaypro.new" "$out/install/relaypro"
        local t0 t1
        t0=$(date +%s.%N)
        cli upgrade --timeout 300 > "$out/upgrade.cli" 2>&1 || log "relaypro upgrade failed: $(cat "$out/upgrade.cli")"
        t1=$(date +%s.%N)
        echo "$t0 $t1" > "$out/upgrade.times"
        wait "$during" || true
        loop_lag > "$out/upgrade.lag-after"
        steady upgrade-after 20
        kill "$sampler" 2> /dev/null || true
        relay_log_time "upgrade: new generation serving; the old one drains" > "$out/spread.drainAt"
        log "upgrade done; the old generation drains for $drain, then closes over $spread"
        # The old generation is gone once every old worker has ended: the drain, the spread, a margin.
        local end=$(($(date +%s) + ${drain%s} + ${spread%s} + 30))
        while [ "$(date +%s)" -lt "$end" ]; do sleep 1; done
    fi
    if [[ ,$scenarios, == *,storm,* ]]; then
        local backlog before label
        local -A storms_with=()
        local -a storms=(${STORM_BACKLOGS:-128 4096})
        local left=${#storms[@]}
        for backlog in "${storms[@]}"; do
            left=$((left - 1))
            # A backlog named again (STORM_BACKLOGS="128 4096 128 4096", to see the spread between
            # storms) is its own storm: storm-128, then storm-128-2 (lifecycle_report.py alike).
            storms_with[$backlog]=$((${storms_with[$backlog]:-0} + 1))
            label=$backlog
            [ "${storms_with[$backlog]}" = 1 ] || label=$backlog-${storms_with[$backlog]}
            [ "$backlog" = floor ] || sed -i "s/^  listenBacklog: .*/  listenBacklog: $backlog/" "$out/config.yml"
            wait_for 300 all_open || log "storm $label: not every tunnel open before it"
            before=$(recovered_count)
            cpu_sampler "$out/storm-$label.cpu" &
            local cpu=$!
            pids+=($cpu)
            sleep 15  # the steady load before: 15 samples with every tunnel open
            date +%s.%N > "$out/storm-$label.restartAt"
            stop_relay
            if [ "$backlog" = floor ]; then
                log "storm against the floor: test/bench/tls_floor in the relay's place"
                start_floor "$label"
            else
                log "restart with listenBacklog $backlog"
                start_relay
            fi
            date +%s.%N > "$out/storm-$label.listeningAt"
            wait_for 300 sh -c "[ \$(grep -c '\"event\":\"recovered\"' '$out/fleet.timeline') -gt $before ]" ||
                log "storm: not every tunnel came back within 300 s"
            sleep 5
            kill "$cpu" 2> /dev/null || true
            date +%s.%N > "$out/storm-$label.endAt"
            if [ "$backlog" = floor ]; then
                stop_floor "$label"
                [ "$left" -gt 0 ] || continue
                # The relay back in its place before the next storm (untimed; not a storm of the report).
                before=$(recovered_count)
                start_relay
                wait_for 300 sh -c "[ \$(grep -c '\"event\":\"recovered\"' '$out/fleet.timeline') -gt $before ]" ||
                    log "after the floor: not every tunnel came back to the relay within 300 s"
                continue
            fi
            curl -s http://127.0.0.1:9464/metrics | grep -E '^relaypro_(tls_handshakes|connections_)' \
                > "$out/storm-$label.metrics" || true
        done
    fi
    fleet_stop
    stop_relay
}

# --- overload: goodput against offered load, without and with the handshake bound
# The overload relay's config.yml: one worker, Basic only, the given maxHandshakes.
overload_config() { # PORT METRICS-PORT MAX-HANDSHAKES
    cat << EOF
consoleAddress: "127.0.0.1"
organizationId: 1
httpsProxy:
  listen: "127.0.0.1:$1"
  certFile: $out/cert.pem
  keyFile: $out/key.pem
passwordFile: $out/passwords.txt
workers: 1
metrics:
  listen: "127.0.0.1:$2"
limits:
  maxHandshakes: $3
  listenBacklog: ${OVERLOAD_BACKLOG:-4096}
EOF
}
scenario_overload() {
    local rate factor
    local b
    cpu_cgroup=""
    if [ "$relay_cpu" -lt 100 ]; then
        # (The kernel's smallest quota is 1 ms: 10 % of the 10 ms period.)
        [ "$relay_cpu" -ge 10 ] || { log "RELAY_CPU must be 10 to 100"; exit 2; }
        cpu_cgroup_make "relayprolc$$" "$relay_cpu" > "$out/cgroup.dir" && cpu_cgroup=$(cat "$out/cgroup.dir") || {
            log "overload: no CPU cgroup to hold the relay at $relay_cpu % of a core; it gets the whole core"
            cpu_cgroup=""
        }
    fi
    echo "${relay_cpu}" > "$out/overload.relayCpu"
    [ -n "$cpu_cgroup" ] || echo 100 > "$out/overload.relayCpu"
    local bounds="0"
    [ "$bound" = 0 ] || bounds="0 $bound"
    # How fast the relay's core runs through the run (test/bench/speed_probe, under 1 % of it,
    # outside the relay's cgroup): the report scales the saturated steps' goodput by it.
    taskset -c 0 "$build/test/speed_probe" --seconds 86400 > "$out/overload-probe.txt" 2> /dev/null &
    local probe=$!
    pids+=("$probe")
    for b in $bounds; do
        overload_config 8443 9464 "$b" > "$out/config.yml"
        # The relay (supervisor and worker) in a CPU cgroup of RELAY_CPU % of core 0, so that the
        # generator, on core 1 to itself, can offer 4× what the relay serves.
        (
            [ -z "$cpu_cgroup" ] || echo "$BASHPID" > "$cpu_cgroup/cgroup.procs"
            RELAYPRO_ENV_FILE=$out/environment.conf exec taskset -c 0 "$out/install/relaypro" run \
                --config "$out/config.yml" --user root >> "$out/relaypro.out" 2>> "$out/relaypro.err"
        ) &
        relay=$!
        wait_for 60 bash -c "exec 3<> /dev/tcp/127.0.0.1/8443" 2> /dev/null
        # Capacity: the best of closed loops of full handshakes at each of CAPACITY_CONCURRENCY
        # ("32 64 128"). One alone read low on this VM: 16 or 48 at once left the relay idle
        # between its 10 ms periods on some runs, and 100 made its ClientHellos stand in the
        # queue long enough to be refused in part.
        local c best=0
        for c in ${CAPACITY_CONCURRENCY:-32 64 128}; do
            taskset -c 1 "$loadgen" rate --proxy 127.0.0.1:8443 --target 127.0.0.1:4222 --auth basic:u:p \
                --concurrency "$c" --count 4000 > "$out/overload-$b-capacity-$c.json" 2> /dev/null || true
            rate=$(/usr/bin/python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["tunnelsPerSecond"]))' \
                "$out/overload-$b-capacity-$c.json")
            if [ "$rate" -gt "$best" ]; then
                best=$rate
                cp "$out/overload-$b-capacity-$c.json" "$out/overload-$b-capacity.json"
                echo "$c" > "$out/overload-$b-capacity.concurrency"
            fi
        done
        rate=$best
        sleep 2  # the worker's counters reach the supervisor within a second or so
        curl -s http://127.0.0.1:9464/metrics | grep -E '^relaypro_(tls_handshakes|connections_)' \
            > "$out/overload-$b-capacity.metrics" || true
        [ "$b" = 0 ] && capacity=$rate
        # ROUNDS passes over the factors, one after the other (0.5 … 4, 0.5 … 4, …), so that a
        # slow or fast spell of this VM falls on every factor alike; the report takes each
        # factor's median. Then, with PROFILE=1 and perf here, one more run of the top factor (or
        # of each of PROFILE_FACTORS) under `perf record`, left out of the medians: the share of
        # the relay's CPU that refusing took there is the floor the report gives under the goal.
        local round factors=${FACTORS:-0.5 1 1.5 2 3 4} previous=capacity top_factor="" passes factor
        for factor in $factors; do top_factor=$factor; done
        passes=$(seq 1 "$rounds")
        if [ "$profile" = 1 ] && command -v perf > /dev/null; then
            passes="$passes profile"
        fi
        : > "$out/overload-$b.steps"
        for round in $passes; do
            for factor in $factors; do
                if [ "$round" = profile ] && [[ " ${PROFILE_FACTORS:-$top_factor} " != *" $factor "* ]]; then
                    continue
                fi
                local offered step=$factor-$round cpu_before core_before profiler="" relay_pids
                offered=$(/usr/bin/python3 -c "print(int($capacity * $factor))")
                cpu_before=$(cpu_cgroup_sample)
                core_before=$(core_sample 1)
                if [ "$round" = profile ]; then
                    # The relay's own processes (its cgroup's, or the supervisor and its children),
                    # from 2 s into the step to 2 s before its end; perf on the relay's core, which
                    # has 85 % to spare, not on the generator's.
                    relay_pids=$( (cat "$cpu_cgroup/cgroup.procs" 2> /dev/null || { echo "$relay"; pgrep -P "$relay"; }) |
                        paste -sd, -)
                    (
                        sleep 2
                        exec taskset -c 0 perf record -F 999 -g -o "$out/overload-$b-profile-$factor.data" \
                            -p "$relay_pids" -- sleep $((step_seconds > 5 ? step_seconds - 4 : 1)) > /dev/null 2>&1
                    ) &
                    profiler=$!
                fi
                taskset -c 1 "$loadgen" steady --proxy 127.0.0.1:8443 --target 127.0.0.1:4222 --auth basic:u:p \
                    --arrival "$offered" --seconds "$step_seconds" --timeout "$giveup" --processes 4 \
                    --source 127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9 \
                    > "$out/overload-$b-$step.json" 2> /dev/null || true
                echo "$cpu_before $(cpu_cgroup_sample)" > "$out/overload-$b-$step.cpu"
                echo "$core_before $(core_sample 1)" > "$out/overload-$b-$step.core1"
                [ -z "$profiler" ] || wait "$profiler" || true
                sleep 3  # what is left of the step drains before the next
                # The relay's side of it, cumulative: handshakes, resets, loop lag.
                curl -s http://127.0.0.1:9464/metrics | grep -E '^relaypro_(tls_handshakes|connections_|worker_loop_lag_seconds_(sum|count)|first_flight_wait_seconds)' \
                    > "$out/overload-$b-$step.metrics" || true
                echo "$step $previous" >> "$out/overload-$b.steps"
                previous=$step
            done
        done
        for factor in $factors; do
            [ -s "$out/overload-$b-profile-$factor.data" ] || continue
            perf script -i "$out/overload-$b-profile-$factor.data" -F comm,pid,ip,sym 2> /dev/null |
                /usr/bin/python3 "$top/test/bench/refusal_share.py" > "$out/overload-$b-profile-$factor.share" || true
        done
        stop_relay
    done
    refusal_floor_steps
    kill "$probe" 2> /dev/null || true
    wait "$probe" 2> /dev/null || true
    forget_pid "$probe"
    [ -z "$cpu_cgroup" ] || rmdir "$cpu_cgroup" 2> /dev/null || true
}
# --- paired: the overload goal read on two relays at once. Two identical relays (one worker,
# maxHandshakes 0, each in a CPU cgroup of RELAY_CPU % of core 0), each with a generator of its
# own on core 1; every round offers one PAIR_FACTORS' low factor and the other its high one, for
# the same STEP_SECONDS, and the next round swaps them. The two steps of a round share the core's
# speed of the moment, which moved a step's goodput by ±15 % between the rounds of a sequential
# run; a block of two rounds cancels what differs between the relays. test/bench/overload_paired.py
# reads it (the rule it applies was fixed before the first such run: its docstring).
scenario_paired() {
    local low high extra
    read -r low high extra <<< "${PAIR_FACTORS:-1.5 4}"
    if [ -z "$high" ] || [ -n "$extra" ] ||
        ! /usr/bin/python3 -c 'import sys; sys.exit(not 0 < float(sys.argv[1]) < float(sys.argv[2]))' "$low" "$high" 2> /dev/null; then
        log "PAIR_FACTORS takes two factors, the lower first"
        exit 2
    fi
    # Two shares and the probe on core 0; the kernel's smallest quota is 1 ms of the 10 ms period.
    if [ "$relay_cpu" -lt 10 ] || [ "$relay_cpu" -gt 45 ]; then
        log "paired: RELAY_CPU must be 10 to 45"
        exit 2
    fi
    local side dir group c rate best=0 generators=() gone
    local -A group_of=() pid_of=() port_of=([a]=8443 [b]=8444) metrics_of=([a]=9464 [b]=9465)
    local -A source_of=([a]="127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9" [b]="127.0.0.10,127.0.0.11,127.0.0.12,127.0.0.13")
    echo "$low $high" > "$out/paired.factors"
    echo "$relay_cpu" > "$out/paired.relayCpu"
    for side in a b; do
        group=$(cpu_cgroup_make "relayprolp$$$side" "$relay_cpu") || { log "paired: no CPU cgroup"; exit 1; }
        group_of[$side]=$group
        paired_groups+=("$group")
        dir=$out/paired-$side
        mkdir -p "$dir"
        overload_config "${port_of[$side]}" "${metrics_of[$side]}" 0 > "$dir/config.yml"
        (
            echo "$BASHPID" > "$group/cgroup.procs"
            RELAYPRO_ENV_FILE=$out/environment.conf exec taskset -c 0 "$out/install/relaypro" run \
                --config "$dir/config.yml" --user root >> "$dir/relaypro.out" 2>> "$dir/relaypro.err"
        ) &
        pid_of[$side]=$!
        pids+=("$!")
        wait_for 60 bash -c "exec 3<> /dev/tcp/127.0.0.1/${port_of[$side]}" 2> /dev/null ||
            { tail "$dir/relaypro.err"; exit 1; }
    done
    # Each relay's threads (supervisor and worker), for the softirq trace's tally.
    for side in a b; do
        wait_for 30 sh -c "[ \$(wc -l < '${group_of[$side]}/cgroup.procs') -ge 2 ]" || true
        echo "$side $(for p in $(cat "${group_of[$side]}/cgroup.procs"); do ls "/proc/$p/task"; done | tr '\n' ' ')"
    done > "$out/paired.pids"
    taskset -c 0 "$build/test/speed_probe" --seconds 86400 > "$out/paired-probe.txt" 2> /dev/null &
    local probe=$!
    pids+=("$probe")
    # Capacity: closed loops on both relays at once (each beside the other, as in the rounds), the
    # best of CAPACITY_CONCURRENCY by the two's mean.
    for c in ${CAPACITY_CONCURRENCY:-32 64 128}; do
        generators=()
        for side in a b; do
            taskset -c 1 "$loadgen" rate --proxy "127.0.0.1:${port_of[$side]}" --target 127.0.0.1:4222 \
                --auth basic:u:p --concurrency "$c" --count 4000 > "$out/paired-capacity-$c-$side.json" 2> /dev/null &
            generators+=("$!")
            pids+=("$!")
        done
        wait "${generators[@]}" || true
        for side in "${generators[@]}"; do forget_pid "$side"; done
        rate=$(/usr/bin/python3 -c 'import json,sys; print(int(sum(json.load(open(f))["tunnelsPerSecond"] for f in sys.argv[1:]) / 2))' \
            "$out/paired-capacity-$c-a.json" "$out/paired-capacity-$c-b.json" 2> /dev/null) || rate=0
        [ "$rate" -le "$best" ] || { best=$rate; echo "$c $rate" > "$out/paired.capacity"; }
    done
    [ "$best" -gt 0 ] || { log "paired: no capacity measured"; exit 1; }
    local round factor low_side high_side core0 core1
    local -A cpu_before=() arrival=()
    # Both rates now, so that the two generators of a round start together.
    for factor in "$low" "$high"; do arrival[$factor]=$(/usr/bin/python3 -c "print(int($best * $factor))"); done
    for round in $(seq 1 "$rounds"); do
        # Odd rounds: a low, b high; even rounds the other way round.
        if [ $((round % 2)) = 1 ]; then low_side=a high_side=b; else low_side=b high_side=a; fi
        for side in a b; do cpu_before[$side]=$(cpu_cgroup_sample "${group_of[$side]}"); done
        core0=$(core_sample 0 softirq)
        core1=$(core_sample 1)
        generators=()
        for side in $low_side $high_side; do
            factor=$low
            [ "$side" = "$low_side" ] || factor=$high
            echo "$side" > "$out/paired-$factor-$round.relay"
            taskset -c 1 "$loadgen" steady --proxy "127.0.0.1:${port_of[$side]}" --target 127.0.0.1:4222 \
                --auth basic:u:p --arrival "${arrival[$factor]}" \
                --seconds "$step_seconds" --timeout "$giveup" --processes 4 --source "${source_of[$side]}" \
                > "$out/paired-$factor-$round.json" 2> /dev/null &
            generators+=("$!")
            pids+=("$!")
        done
        if [ "${SOFTIRQ_TRACE:-0}" -gt 0 ]; then
            # Who pays for core 0's softirqs, SOFTIRQ_TRACE seconds from 5 s into the round.
            (
                sleep 5
                exec perf record -q -e irq:softirq_entry -e irq:softirq_exit -g -C 0 \
                    -o "$out/paired-$round.softirq.data" -- sleep "$SOFTIRQ_TRACE" > /dev/null 2>&1
            ) &
            generators+=("$!")
            pids+=("$!")
        fi
        wait "${generators[@]}" || true
        for side in "${generators[@]}"; do forget_pid "$side"; done
        if [ -s "$out/paired-$round.softirq.data" ]; then
            perf script -i "$out/paired-$round.softirq.data" 2> /dev/null |
                /usr/bin/python3 "$top/test/bench/softirq_share.py" > "$out/paired-$round.softirq.json" || true
        fi
        for side in $low_side $high_side; do
            factor=$low
            [ "$side" = "$low_side" ] || factor=$high
            echo "${cpu_before[$side]} $(cpu_cgroup_sample "${group_of[$side]}")" > "$out/paired-$factor-$round.cpu"
        done
        echo "$core0 $(core_sample 0 softirq)" > "$out/paired-$round.core0"
        echo "$core1 $(core_sample 1)" > "$out/paired-$round.core1"
        sleep 3  # what is left of the steps drains before the next round
        for side in a b; do
            curl -s "http://127.0.0.1:${metrics_of[$side]}/metrics" |
                grep -E '^relaypro_(tls_handshakes|connections_)' > "$out/paired-$side-$round.metrics" || true
        done
        # A relay that has gone ends the rounds (the report says so): its later steps would
        # measure nothing.
        gone=""
        for side in a b; do kill -0 "${pid_of[$side]}" 2> /dev/null || gone="$gone $side"; done
        if [ -n "$gone" ]; then
            echo $gone > "$out/paired-$round.dead"
            log "paired: relay$gone gone after round $round"
            break
        fi
    done
    for side in a b; do
        kill -TERM "${pid_of[$side]}" 2> /dev/null || true
        wait "${pid_of[$side]}" 2> /dev/null || true
        forget_pid "${pid_of[$side]}"
    done
    kill "$probe" 2> /dev/null || true
    wait "$probe" 2> /dev/null || true
    forget_pid "$probe"
}
# The floor under refusing, measured in the same run: refusal_floor (accept4, SO_LINGER, close on
# one epoll loop, nothing else) on the relay's port, core and CPU cgroup, paused after each batch
# for the part of a 10 ms period that the quota leaves the relay stopped, so that connections
# gather as in front of the throttled worker; offered the rate at which the relay refused or shed
# at the top factor (the median of its runs, from its own counters), then twice that: the report
# solves the two for the cost of a refusal and that of a batch (its wake-up and pause).
refusal_floor_steps() {
    local top_factor="" factor rate pause mode offered floor
    for factor in ${FACTORS:-0.5 1 1.5 2 3 4}; do top_factor=$factor; done
    # (Without a CPU quota there are no periods to gather connections in, and no CPU figures for
    # the report to set them against.)
    [ -n "$cpu_cgroup" ] || { log "overload: no CPU cgroup; no refusal floor"; return 0; }
    rate=$(/usr/bin/python3 - "$out" "$top_factor" "$step_seconds" 2> /dev/null << 'PY' || echo 0
import sys
out, factor, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
def shed(name):
    total = 0.0
    try:
        for line in open(f"{out}/{name}.metrics"):
            if line.startswith("relaypro_connections_shed_total{"):
                total += float(line.split()[-1])
    except (OSError, ValueError):
        return None
    return total
rates = []
try:
    for line in open(f"{out}/overload-0.steps"):
        this, before = line.split()
        if this.rsplit("-", 1)[0] != factor or not this.rsplit("-", 1)[1].isdigit():
            continue
        now, then = shed(f"overload-0-{this}"), shed(f"overload-0-{before}")
        if now is not None and then is not None:
            rates.append((now - then) / seconds)
except (OSError, ValueError):
    pass
rates.sort()
print(int(rates[len(rates) // 2]) if rates else 0)
PY
    )
    [ "${rate:-0}" -gt 0 ] || { log "overload: no refusals at the top factor; no refusal floor"; return 0; }
    echo "$top_factor" > "$out/overload-floor.factor"
    pause=$((10000 * (100 - $(cat "$out/overload.relayCpu")) / 100))
    for mode in throttled throttled-twice; do
        offered=$rate
        [ "$mode" = throttled ] || offered=$((2 * rate))
        (
            [ -z "$cpu_cgroup" ] || echo "$BASHPID" > "$cpu_cgroup/cgroup.procs"
            exec taskset -c 0 "$build/test/refusal_floor" --listen 127.0.0.1:8443 --pause-us "$pause" \
                --seconds $((step_seconds + 30))
        ) > "$out/overload-floor-$mode.out" 2> "$out/overload-floor-$mode.err" &
        floor=$!
        pids+=("$floor")
        if ! wait_for 10 grep -q listening "$out/overload-floor-$mode.out"; then
            log "overload: the refusal floor did not start: $(cat "$out/overload-floor-$mode.err")"
            kill "$floor" 2> /dev/null || true
            wait "$floor" 2> /dev/null || true
            forget_pid "$floor"
            return 0
        fi
        local started
        started=$(date +%s.%N)
        taskset -c 1 "$loadgen" steady --proxy 127.0.0.1:8443 --target 127.0.0.1:4222 --auth basic:u:p \
            --arrival "$offered" --seconds "$step_seconds" --timeout "$giveup" --processes 4 \
            --source 127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9 > "$out/overload-floor-$mode.json" 2> /dev/null || true
        echo "$started $(date +%s.%N)" > "$out/overload-floor-$mode.time"
        kill -TERM "$floor" 2> /dev/null || true
        wait "$floor" 2> /dev/null || true
        forget_pid "$floor"
        echo "$pause" > "$out/overload-floor-$mode.pause"
    done
}
# A process of pids that has ended and been waited for: cleanup must not signal its number again.
forget_pid() { # PID
    local keep=() p
    for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    pids=("${keep[@]}")
}
# The relay's CPU cgroup (or GROUP) now: "SECONDS-SINCE-EPOCH CPU-NS PERIODS THROTTLED-PERIODS"
# (empty without one), so that a step shows whether the relay used all its share.
cpu_cgroup_sample() { # [GROUP]
    local group=${1:-$cpu_cgroup}
    [ -n "$group" ] || return 0
    local usage=0 periods throttled pid f
    # The CPU time of its threads (schedstat: ns on a CPU), as v1's cpu controller without cpuacct
    # has no usage of its own; the relay's processes live through a step.
    for pid in $(cat "$group/cgroup.procs"); do
        for f in /proc/"$pid"/task/*/schedstat; do
            read -r f _ < "$f" 2> /dev/null && usage=$((usage + f))
        done
    done
    periods=$(awk '$1 == "nr_periods" {print $2}' "$group/cpu.stat")
    throttled=$(awk '$1 == "nr_throttled" {print $2}' "$group/cpu.stat")
    echo "$(date +%s.%N) $usage $periods $throttled"
}
# Core N's time now, from /proc/stat: "BUSY-TICKS ALL-TICKS" (user, nice, system, irq and softirq
# against those and idle and iowait; steal, time the hypervisor took, is neither), so that a step
# shows whether the generator, on core 1 to itself, kept up with its arrivals; with "softirq", a
# third figure: the ticks in softirq (the kernel's work that lands on whichever task runs).
core_sample() { # N [softirq]
    awk -v cpu="cpu$1" -v soft="${2:-}" '$1 == cpu {
        busy = $2 + $3 + $4 + $7 + $8
        if (soft != "") print busy, busy + $5 + $6, $8; else print busy, busy + $5 + $6 }' /proc/stat
}
# A CPU cgroup (v2, or v1's cpu controller) that lets its processes run PERCENT % of one core, in
# 10 ms periods (a relay on a slower CPU, not one stopped for most of a 100 ms period). `ip netns
# exec` gave this script a /sys of its own, without the cgroup mounts: the hierarchy is mounted
# again under $out/cgroup (this mount namespace's only).
cpu_cgroup_make() { # NAME PERCENT: prints its directory
    local root=$out/cgroup quota=$((10000 * $2 / 100))
    mkdir -p "$root"
    # Mounted by the first call; a second group (the paired scenario's) goes beside the first.
    if ! mountpoint -q "$root"; then
        if mount -t cgroup2 none "$root" 2> /dev/null; then
            grep -qw cpu "$root/cgroup.controllers" || umount "$root"
        fi
        # v1: the cpu controller is often mounted together with cpuacct (systemd), and a mount of
        # it must name the same set.
        mountpoint -q "$root" || mount -t cgroup -o cpu,cpuacct none "$root" 2> /dev/null ||
            mount -t cgroup -o cpu none "$root" 2> /dev/null || return 1
    fi
    if [ -e "$root/cgroup.controllers" ]; then
        # v2. Enabled for the root's children if it was not, and undone at the end (cleanup; this
        # runs in a command substitution: the note is a file).
        if ! grep -qw cpu "$root/cgroup.subtree_control"; then
            echo +cpu > "$root/cgroup.subtree_control" 2> /dev/null && echo "$root" > "$out/cgroup.enabled"
        fi
        mkdir "$root/$1" || return 1
        echo "$quota 10000" > "$root/$1/cpu.max" && echo "$root/$1" && return
    else
        mkdir "$root/$1" || return 1
        if echo 10000 > "$root/$1/cpu.cfs_period_us" && echo "$quota" > "$root/$1/cpu.cfs_quota_us"; then
            echo "$root/$1"
            return
        fi
    fi
    rmdir "$root/$1"
    return 1
}

if [[ ,$scenarios, == *,upgrade,* || ,$scenarios, == *,spread,* || ,$scenarios, == *,storm,* ]]; then
    scenario_fleet
fi
if [[ ,$scenarios, == *,overload,* ]]; then
    scenario_overload
fi
if [[ ,$scenarios, == *,paired,* ]]; then
    scenario_paired
fi
BOUND=$bound STEP_SECONDS=$step_seconds FACTORS=${FACTORS:-0.5 1 1.5 2 3 4} STORM_BACKLOGS=${STORM_BACKLOGS:-128 4096} \
    OVERLOAD_BACKLOG=${OVERLOAD_BACKLOG:-4096} /usr/bin/python3 "$top/test/bench/lifecycle_report.py" "$out" \
    "$responders" "$scenarios" | tee "$out/results.md"
