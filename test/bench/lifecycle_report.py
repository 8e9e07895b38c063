#!/usr/bin/python3
"""The report of test/bench/run-lifecycle.sh: results.md on stdout, chart.svg (gnuplot) beside it.

    lifecycle_report.py OUT_DIR RESPONDERS SCENARIOS
"""
import json
import os
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import overload_pool  # noqa: E402  (its simulation of a run's figure)

out, responders, scenarios = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
BOUND = os.environ.get("BOUND", "auto")


def path(name):
    return os.path.join(out, name)


def exists(name):
    return os.path.exists(path(name))


def load(name):
    return json.load(open(path(name)))


def cpu_lines(name, who, t0, t1):
    """Where the CPU went around a storm (run-lifecycle.sh's cpu_sampler): the steady load before
    the restart, and from the restart until every tunnel was open again (t1; None: never). `who`
    names the storm ("listenBacklog 4096", "the floor")."""
    hz, samples = 100, []
    for line in open(path(name + ".cpu")):
        if line.startswith("# CLK_TCK"):
            hz = int(line.split()[2])
            continue
        f = line.split()
        if len(f) == 7:
            samples.append([float(x) for x in f])
    def span(a, b):
        inside = [x for x in samples if a <= x[0] <= b]
        if len(inside) < 2:
            return None
        first, last = inside[0], inside[-1]
        wall = last[0] - first[0]
        d = [(last[i] - first[i]) for i in range(1, 7)]
        # The relay's processes change over a restart (their ticks leave with them): the relay
        # (and the kernel's work for everyone, network included) is what the box spent beyond
        # the fleet, the echo targets and the console simulator.
        d[2] = d[0] - d[3] - d[4] - d[5]
        cores = [v / hz / wall for v in d[2:]]  # relay, fleet, echo, console
        return wall, d[0] / d[1], cores
    out = []
    before = span(t0 - 20, t0)
    during = span(t0, t1 if t1 is not None else float("inf"))
    # The rest: the relay, the kernel's work for everyone (the network), the bench's own tools.
    names = ("relay and the rest", "fleet", "echo", "console")
    if before:
        wall, busy, cores = before
        out.append(f"- {who}, the {wall:.0f} s before the restart: box "
                   f"{busy * 100:.0f} % busy; " + ", ".join(f"{n} {c:.2f}" for n, c in zip(names, cores)) + " cores.")
    if during:
        wall, busy, cores = during
        until = "until every tunnel was open again" if t1 is not None else "until the sampling ended (not every tunnel came back)"
        out.append(f"- {who}, from the restart {until} ({wall:.0f} s): "
                   f"box {busy * 100:.0f} % busy; " + ", ".join(f"{n} {c * wall:.0f}" for n, c in zip(names, cores)) +
                   " CPU-seconds.")
    if exists(name + ".metrics"):
        m = dict(l.rsplit(" ", 1) for l in open(path(name + ".metrics")).read().splitlines() if " " in l)
        out.append(f"- {who}, the relay's counters after it (since the start): " +
                   ", ".join(f"{k} {v}" for k, v in m.items()) + ".")
    return out


def timeline(name):
    """The fleet's per-second lines and its events."""
    seconds, events = [], []
    if not exists(name + ".timeline"):
        return seconds, events
    for line in open(path(name + ".timeline")):
        line = line.strip()
        if not line:
            continue
        try:
            d = json.loads(line)
        except ValueError:
            continue
        (events if "event" in d else seconds).append(d)
    return seconds, events


def failures(rows):
    return sum(sum(r.get("failures", {}).values()) for r in rows)


def stamp(name):
    return float(open(path(name)).read().split()[0])


def ms(us):
    return us / 1000.0


print(f"# Lifecycle at scale: {responders} Responders")
print()
charts = []

if "upgrade" in scenarios and exists("upgrade.times"):
    t0, t1 = (float(x) for x in open(path("upgrade.times")).read().split())
    rows, events = timeline("fleet")
    # Until the drain deadline (the old generation keeps every tunnel until then).
    deadline = t1 + 40
    if exists("spread.drainAt") and open(path("spread.drainAt")).read().strip():
        deadline = stamp("spread.drainAt") + float(os.environ.get("DRAIN", "150s").rstrip("s")) - 1
    window = [r for r in rows if t0 - 1 <= r["time"] <= deadline]
    cut = failures(window)
    lowest = min((r["open"] for r in window), default=0)
    print("## Upgrade with every tunnel open")
    print()
    print(f"- `relaypro upgrade` took {t1 - t0:.1f} s (until the re-executed supervisor served).")
    kinds = {}
    for r in window:
        for k, v in r.get("failures", {}).items():
            kinds[k] = kinds.get(k, 0) + v
    print(f"- Tunnels open from the upgrade to the drain deadline ({deadline - t0:.0f} s): lowest {lowest} of "
          f"{responders}; fleet failures (tunnels cut) in that window: {cut} {json.dumps(kinds)}.")
    print()
    print("| new tunnels (Basic, steady) | started | failed | CONNECT p50 ms | p99 ms | total p99 ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for phase in ("before", "during", "after"):
        name = f"upgrade-{phase}.json"
        if not exists(name):
            continue
        d = load(name)
        c, t = d["latencyUs"]["connect"], d["latencyUs"]["total"]
        print(f"| {phase} | {d['started']} | {d['failed']} | {ms(c['p50']):.2f} | {ms(c['p99']):.2f} | {ms(t['p99']):.2f} |")
    print()
    if exists("upgrade.peak"):
        rss, fds = (int(x) for x in open(path("upgrade.peak")).read().split())
        print(f"- Peak over both generations: RSS {rss / 1024:.0f} MiB, {fds} descriptors.")
    if exists("upgrade.lag-before") and exists("upgrade.lag-after"):
        before = dict(line.split() for line in open(path("upgrade.lag-before")) if line.strip())
        after = dict(line.split() for line in open(path("upgrade.lag-after")) if line.strip())
        delta = [(le, float(after[le]) - float(before.get(le, 0))) for le in after]
        total = delta[-1][1] if delta else 0
        worst = next((le for le, n in delta if n >= total), "?")
        print(f"- Worker loop lag over the upgrade: {int(total)} ticks of 25 ms; the longest within {worst} s "
              f"(relaypro_worker_loop_lag_seconds buckets: {', '.join(f'≤{le}: {int(n)}' for le, n in delta)}).")
    print()
    with open(path("chart-upgrade.dat"), "w") as f:
        for r in rows:
            if not t0 - 30 <= r["time"] <= t1 + 400:
                continue
            f.write(f"{r['time'] - t0:.1f} {r['open']} {r.get('established', 0)}\n")
    charts.append(("chart-upgrade.dat", "Tunnels open through an upgrade (s from relaypro upgrade)"))

if "spread" in scenarios and exists("spread.drainAt") and open(path("spread.drainAt")).read().strip():
    t0 = stamp("spread.drainAt")
    rows, _ = timeline("fleet")
    drain_s = float(os.environ.get("DRAIN", "150s").rstrip("s"))
    spread_s = float(os.environ.get("SPREAD", "60s").rstrip("s"))
    inside = [r for r in rows if t0 + drain_s <= r["time"] <= t0 + drain_s + spread_s + 5]
    even = responders / spread_s
    peak = max((r.get("established", 0) for r in inside), default=0)
    back = sum(r.get("established", 0) for r in inside)
    print("## A gradual drain")
    print()
    print(f"- drainTimeout {drain_s:.0f} s, drainSpread {spread_s:.0f} s: {back} tunnels re-established during the "
          f"spread; the even rate is {even:.0f}/s, the peak second {peak}/s = {peak / even:.2f}× the even rate "
          f"(goal ≤ 1.5×); fleet failures {failures(inside)}.")
    print()
    with open(path("chart-spread.dat"), "w") as f:
        for r in rows:
            if not t0 + drain_s - 10 <= r["time"] <= t0 + drain_s + spread_s + 20:
                continue
            f.write(f"{r['time'] - t0:.1f} {r['open']} {r.get('established', 0)}\n")
    charts.append(("chart-spread.dat", "Drain spread: tunnels open and re-established per second"))

storm_cpu = []
storm_times = []  # (backlog or "floor", as shown, to 90 %, to 100 %)
storm_header = False
BACKLOGS = os.environ.get("STORM_BACKLOGS", "128 4096").split()
FACTORS = os.environ.get("FACTORS", "0.5 1 1.5 2 3 4").split()


def storm_labels(backlogs):
    """Each storm's backlog and label, as run-lifecycle.sh names its files: a backlog named again
    is its own storm (128, then 128-2)."""
    seen, out = {}, []
    for b in backlogs:
        seen[b] = seen.get(b, 0) + 1
        out.append((b, b if seen[b] == 1 else f"{b}-{seen[b]}"))
    return out


STORMS = storm_labels(BACKLOGS)
for backlog, label in STORMS:
    name = f"storm-{label}"
    if "storm" not in scenarios or not exists(name + ".restartAt"):
        continue
    if not storm_header:
        storm_header = True
        print("## Restart storm")
        print()
        print("| listenBacklog (or the floor) | listening after | to 50 % | to 90 % | to 100 % | console calls | "
              "verify calls | resumed | full |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    t0 = stamp(name + ".restartAt")
    rows, events = timeline("fleet")
    # (Not the fleet's last line: its tunnels closed at its stop, that is no storm's low.)
    after = [r for r in rows if r["time"] >= t0 and not r.get("last")]
    # Until the next restart after this one, if another storm followed.
    later = [stamp(f"storm-{x}.restartAt") for _, x in STORMS if exists(f"storm-{x}.restartAt")]
    end = min([t for t in later if t > t0], default=float("inf"))
    # Until this storm's end (run-lifecycle.sh's endAt: the floor's storm ends where the relay
    # returns); before endAt was written, the last sample of its CPU sampler, killed then.
    if exists(name + ".endAt"):
        end = min(end, stamp(name + ".endAt"))
    elif exists(name + ".cpu"):
        ends = [float(l.split()[0]) for l in open(path(name + ".cpu")) if len(l.split()) == 7]
        end = min(end, ends[-1] + 1) if ends else end
    after = [r for r in after if r["time"] < end]
    # From the restart: the first second with half, 90 % and all of the Responders' tunnels open
    # again (after the drop the stop causes; the fleet's timeline has a line a second).
    low = min(range(len(after)), key=lambda i: after[i]["open"]) if after else 0
    def at(k):
        share = {"to50": 0.5, "to90": 0.9, "to100": 1.0}[k]
        hit = next((r for r in after[low:] if r["open"] >= share * responders), None)
        return f"{hit['time'] - t0:.0f} s" if hit else "—"
    shown = backlog if label == backlog else f"{backlog} (storm {label.rsplit('-', 1)[1]})"
    who = f"listenBacklog {shown}"
    if backlog == "floor":  # run-lifecycle.sh's start_floor: test/bench/tls_floor in the relay's place
        shown = "the floor, tls_floor" + ("" if label == backlog else f" (storm {label.rsplit('-', 1)[1]})")
        who = shown
        if exists(name + ".invalid"):  # a serving process of the floor ended unasked
            shown += f" (not a floor: {open(path(name + '.invalid')).read().strip()})"
    # From the restart until the relay (or the floor) listened again (run-lifecycle.sh's start_*).
    listening = f"{stamp(name + '.listeningAt') - t0:.1f} s" if exists(name + ".listeningAt") else "—"
    storm_times.append((backlog, shown, at("to90"), at("to100")))
    print(f"| {shown} | {listening} | {at('to50')} | {at('to90')} | {at('to100')} | "
          f"{sum(r.get('consoleCalls', 0) for r in after)} | {sum(r.get('consoleVerify', 0) for r in after)} | "
          f"{sum(r.get('resumed', 0) for r in after)} | {sum(r.get('full', 0) for r in after)} |")
    full_at = next((r["time"] for r in after[low:] if r["open"] >= responders), None)
    if exists(name + ".cpu"):
        storm_cpu.append(cpu_lines(name, who, t0, full_at))
    lags = [r["loopLagMaxMs"] for r in after if "loopLagMaxMs" in r and (full_at is None or r["time"] <= full_at)]
    if lags:
        storm_cpu.append([f"- {who}: the fleet's own event loop ran up to {max(lags) / 1000:.1f} s "
                          f"late after the restart (the longest tick lag of a second; {sum(l > 1000 for l in lags)} "
                          f"seconds with more than 1 s), against its Responders' timeout of 15 s."])
    with open(path(f"chart-{name}.dat"), "w") as f:
        for r in rows:
            if not t0 - 5 <= r["time"] <= t0 + max(90, (full_at or t0) - t0 + 10) or r["time"] >= end:
                continue
            f.write(f"{r['time'] - t0:.1f} {r['open']} {r.get('established', 0)}\n")
    # (gnuplot's enhanced text would take tls_floor's "_" for a subscript)
    charts.append((f"chart-{name}.dat", f"Restart storm, {who.replace('tls_floor', 'tls-floor')}"))
if "storm" in scenarios:
    print()
    floors = [t for t in storm_times if t[0] == "floor"]
    relays = [t for t in storm_times if t[0] != "floor"]
    if floors and relays:
        # The goal's reason when it is missed: what the least relay took for the same storm.
        print("Against the floor in the same run (to 90 % / to 100 %): " +
              "; ".join(f"{s} {a} / {b}" for _, s, a, b in relays) + "; " +
              "; ".join(f"{s} {a} / {b}" for _, s, a, b in floors) + ".")
        print()
    for lines in storm_cpu:
        for line in lines:
            print(line)
    if storm_cpu:
        print()

if "overload" in scenarios and exists("overload-0-capacity.json"):
    cap = load("overload-0-capacity.json")
    capacity = cap["tunnelsPerSecond"]
    print("## Goodput under overload")
    print()
    share = open(path("overload.relayCpu")).read().strip() if exists("overload.relayCpu") else "100"
    print(f"Capacity (closed loop, one worker on {share} % of one core, the generator on the other; "
          f"listenBacklog {os.environ.get('OVERLOAD_BACKLOG', '4096')}, the bound {BOUND}; concurrency "
          f"{open(path('overload-0-capacity.concurrency')).read().strip() if exists('overload-0-capacity.concurrency') else '?'}, "
          f"the best of {os.environ.get('CAPACITY_CONCURRENCY', '32 64 128')}): {capacity:.0f} tunnels/s, {cap['failed']} failed.")
    print()
    step = float(os.environ.get("STEP_SECONDS", "20"))
    bounds = ["0"] + ([BOUND] if BOUND != "0" else [])

    def metrics(name):
        if not exists(name):
            return None
        return {k: float(v) for k, v in (l.rsplit(" ", 1) for l in open(path(name)).read().splitlines() if " " in l)}

    COUNTERS = ['relaypro_connections_shed_total{at="accept"}', 'relaypro_connections_shed_total{at="queue"}',
                'relaypro_tls_handshakes_total{kind="full"}', 'relaypro_tls_handshakes_total{kind="resumed"}',
                "relaypro_connections_abandoned_total"]

    def counted(bound, this, before):
        """The relay's counts in a step: its cumulative counters after it, less after the step
        before. [refused at accept, shed after 1 s, handshakes, abandoned]"""
        now, then = metrics(f"overload-{bound}-{this}.metrics"), metrics(f"overload-{bound}-{before}.metrics")
        if now is None or then is None:
            return None
        d = [now.get(k, 0) - then.get(k, 0) for k in COUNTERS]
        return [d[0], d[1], d[2] + d[3], d[4]]

    def cpu(bound, this):
        """The relay's cgroup over a step: CPU used against its share, and the share of its 10 ms
        periods in which it ran out (below 100 %: the relay had nothing to do at times)."""
        name = f"overload-{bound}-{this}.cpu"
        v = open(path(name)).read().split() if exists(name) else []
        if len(v) != 8:
            return None
        t0, u0, p0, th0, t1, u1, p1, th1 = (float(x) for x in v)
        return [(u1 - u0) / 1e9 / (t1 - t0) / (float(share) / 100), (th1 - th0) / (p1 - p0) if p1 > p0 else None]

    def generator(bound, this):
        """How busy core 1 was over a step: the generator's, shared with the echo targets and the
        simulator. Well below 100 %, the generator had CPU to spare; near it, its clients may have
        fallen behind their arrivals and the step measures the generator as well."""
        name = f"overload-{bound}-{this}.core1"
        v = open(path(name)).read().split() if exists(name) else []
        if len(v) != 4:
            return None
        b0, a0, b1, a1 = (float(x) for x in v)
        return (b1 - b0) / (a1 - a0) if a1 > a0 else None

    # The speed probe's units (run-lifecycle.sh): "UNIX-TIME MICROSECONDS" each.
    probe = []
    if exists("overload-probe.txt"):
        for line in open(path("overload-probe.txt")):
            f = line.split()
            if len(f) == 2:
                probe.append((float(f[0]), float(f[1])))

    def probe_median(t0, t1):
        """The probe's median unit from t0 to t1 (µs; more: the core ran slower), or None."""
        units = sorted(u for t, u in probe if t0 <= t <= t1)
        return units[len(units) // 2] if units else None

    def slowness(bound, this):
        """The probe's median unit over a step, or None."""
        name = f"overload-{bound}-{this}.cpu"
        v = open(path(name)).read().split() if exists(name) else []
        return probe_median(float(v[0]), float(v[4])) if len(v) == 8 else None

    def median(values):
        """overload_pool's median of the values that are not None, or None."""
        values = [v for v in values if v is not None]
        return overload_pool.median(values) if values else None

    def show(v, fmt, suffix=""):
        return "?" if v is None else f"{v:{fmt}}{suffix}"

    def floor_run(mode):
        """One of refusal_floor's runs (run-lifecycle.sh): its own report (its last line) with the
        rate it was offered, its pause and when it ran; or the reason there is none."""
        name = f"overload-floor-{mode}"
        try:
            lines = [l for l in open(path(name + ".out")).read().splitlines() if l.startswith("{")]
            report = json.loads(lines[-1])
            report["offered"] = load(name + ".json")["started"] / step
            report["pause"] = int(open(path(name + ".pause")).read())
            t0, t1 = (float(x) for x in open(path(name + ".time")).read().split())
        except (OSError, ValueError, IndexError, KeyError) as e:
            return f"{name}: {type(e).__name__} {e}"
        if not report.get("refused"):
            return f"{name}: it refused nothing"
        if report.get("notReset"):
            return f"{name}: {report['notReset']} of its closes were not resets"
        # At the run's usual speed, as the steps' goodput is (None: no probe then).
        unit = probe_median(t0, t1)
        report["usual"] = report["cpuSeconds"] * usual / unit if unit and usual else None
        return report

    def refusal_floor(top_runs, peak_good, rows):
        """The goodput that refusing leaves at the top factor, from the floor measured in this run
        rather than fitted.
        - The floor's marginal cost of a refusal c: two runs at the same pause, one offered twice
          the other's rate, each CPU = a × its batches + c × its refusals, solved for both.
        - The peak's run (the median one of the peak factor): CPU per tunnel h, refusals per tunnel
          k and CPU used S; the top factor's median run: its CPU used S', and what reached the
          relay each second, O (served, refused, shed). With the offered load held, more served
          means fewer refused: G = (S' - c O) / (h - c k - c), against the peak's S / h.
        All at the run's usual speed where the probe ran. Prints it; [the ceiling, %] or None."""
        once, twice = floor_run("throttled"), floor_run("throttled-twice")
        for run in (once, twice):
            if isinstance(run, str):
                print(f"No floor under refusing in this run ({run}).")
                return None
        scaled = once["usual"] is not None and twice["usual"] is not None
        cpu = [(r["usual"] if scaled else r["cpuSeconds"]) * 1e6 for r in (once, twice)]
        (w1, r1), (w2, r2) = ((r["wakeups"], r["refused"]) for r in (once, twice))
        determinant = r2 * w1 - r1 * w2
        if r2 < 1.2 * r1 or determinant <= 0:
            print(f"No floor under refusing in this run (its second run refused {r2} against {r1}, in {w2} and {w1} "
                  "batches: the two do not tell a refusal's cost from a batch's).")
            return None
        cost = (cpu[1] * w1 - cpu[0] * w2) / determinant
        per_batch = (cpu[0] * r2 - cpu[1] * r1) / determinant
        peak_runs = next((rows[f] for f in FACTORS if rows.get(f) and median([x["good"] for x in rows[f]]) == peak_good), [])
        usable = lambda r: r["counts"] is not None and r["cpu"] is not None and r["good"] > 0
        def median_run(runs):
            runs = sorted((r for r in runs if usable(r)), key=lambda r: r["good"])
            return runs[len(runs) // 2] if runs else None
        at_peak, at_top = median_run(peak_runs), median_run(top_runs)
        if at_peak is None or at_top is None:
            print("No floor under refusing in this run (no usable run at the peak or at the top factor).")
            return None
        def figures(r):
            """CPU per tunnel (µs, at the usual speed where known), refusals per tunnel, CPU used
            (CPU-seconds a second), goodput at that speed."""
            speed = usual / r["slowness"] if scaled and r["slowness"] else 1
            used = r["cpu"][0] * float(share) / 100
            return used * 1e6 / r["good"] * speed, sum(r["counts"][:2]) / (r["good"] * step), used, r["good"] / speed
        h, k_peak, used_peak, good_peak = figures(at_peak)
        _, k_top, used_top, good_top = figures(at_top)
        reaching = good_top * (1 + k_top)  # served, refused and shed a second at the top factor
        base = h - cost * k_peak
        served = (used_top * 1e6 - cost * reaching) / (base - cost) if base > cost else None
        if served is None or cost <= 0 or k_top <= k_peak:
            print(f"No floor under refusing in this run: {cost:.1f} µs a refusal, {k_peak:.2f} refused per tunnel at "
                  f"the peak against {k_top:.2f} at the top factor.")
            return None
        ceiling = 100 * served / (used_peak * 1e6 / h)
        measured = 100 * good_top / good_peak
        speed_note = " at the run's usual speed" if scaled else ""
        factor = open(path("overload-floor.factor")).read().strip() if exists("overload-floor.factor") else "?"
        print(f"The floor under refusing, measured in this run (test/bench/refusal_floor: accept4, SO_LINGER, close on "
              f"one epoll loop and nothing else, on the relay's port, core and CPU share, paused {once['pause']} µs "
              f"after each batch, the part of a 10 ms period the quota stops the relay): offered "
              f"{once['offered']:.0f} and then {twice['offered']:.0f} connections a second (what the relay refused or "
              f"shed at {factor}×, and twice that), it spent {once['usPerRefusal']:.1f} and "
              f"{twice['usPerRefusal']:.1f} µs a refusal (as measured, batches included) in batches of "
              f"{r1 / max(w1, 1):.0f} and {r2 / max(w2, 1):.0f}. Taken apart{speed_note}: **{cost:.1f} µs a refusal** "
              f"and {per_batch:.0f} µs a batch. The median run at the peak spent {h:.0f} µs per tunnel served"
              f"{speed_note} with {k_peak:.2f} refused per tunnel; the median run at {top}×, {k_top:.2f}, using "
              f"{100 * used_top / used_peak:.0f} % of the CPU the peak's did. So refusing at accept, however lean, "
              f"leaves about **{ceiling:.0f} %** of the peak at most at {top}× on this machine (one pair of 20 s "
              f"floor runs: no error bar); those two runs measured {measured:.0f} %{speed_note}"
              + (" (above the ceiling: this VM's noise between the runs)" if measured > ceiling else "") + ".")
        return ceiling

    # Each step as run: "FACTOR-ROUND PREVIOUS" in overload-BOUND.steps.
    steps = {}
    for bound in bounds:
        rows = {}
        if exists(f"overload-{bound}.steps"):
            for line in open(path(f"overload-{bound}.steps")):
                this, before = line.split()
                factor, round_ = this.rsplit("-", 1)
                d = load(f"overload-{bound}-{this}.json") if exists(f"overload-{bound}-{this}.json") else None
                if d is None:
                    continue
                rows.setdefault(factor if round_.isdigit() else f"{factor}-{round_}", []).append({
                    "offered": d["started"] / step, "good": d["succeeded"] / step, "failed": d["failed"],
                    "p99": ms(d["latencyUs"]["total"]["p99"]) if d["succeeded"] else None,
                    "counts": counted(bound, this, before), "cpu": cpu(bound, this),
                    "generator": generator(bound, this), "slowness": slowness(bound, this), "step": this})
        steps[bound] = rows
    # Each step's goodput at the run's usual speed: scaled by how much slower (or faster) the
    # probe found the core then than in the run's median step.
    usual = median([r["slowness"] for rows in steps.values() for runs in rows.values() for r in runs])
    for rows in steps.values():
        for runs in rows.values():
            for r in runs:
                # Only where the CPU held goodput down (the relay used its share): below that,
                # goodput is what was offered, whatever the speed.
                saturated = r["cpu"] is not None and r["cpu"][0] >= 0.95
                r["scaled"] = (r["good"] * r["slowness"] / usual if saturated else r["good"]) \
                    if usual and r["slowness"] else None
    rounds = max((len(r) for rows in steps.values() for r in rows.values()), default=1)
    if rounds > 1:
        print(f"Each factor was run {rounds} times, the factors in turn ({' '.join(FACTORS)}, then again); "
              "the table gives each factor's median goodput, p99 and relay CPU, every run's goodput, and the "
              "failures and resets of all its runs together. The peak is the highest of the factors' medians.")
    print()
    print("| offered × capacity | bound | offered /s | goodput /s (median) | goodput of each run | failed (all runs) | "
          "refused at accept (all runs) | shed after 1 s (all runs) | p99 ms of the established (median of the runs') | "
          "relay CPU, % of its share | 10 ms periods throttled | core 1 busy (the generator's, with the echo targets "
          "and the simulator) | goodput at the run's usual speed "
          "(median; each run) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    peak, scaled_peak = {}, {}
    with open(path("chart-goodput.dat"), "w") as f:
        for factor in FACTORS:
            row = [factor]
            for bound in bounds:
                runs = steps[bound].get(factor, [])
                if not runs:
                    row.append("NaN")  # gnuplot leaves it out, rather than drawing a zero
                    continue
                good = median([r["good"] for r in runs])
                peak[bound] = max(peak.get(bound, 0), good)
                row.append(f"{good:.0f}")
                refused = [r["counts"][0] for r in runs if r["counts"] is not None]
                each = " / ".join(f"{r['good']:.0f}" for r in runs)
                waited = [r["counts"][1] for r in runs if r["counts"] is not None]
                each_scaled = ""
                if all(r["scaled"] is not None for r in runs):
                    each_scaled = "; " + " / ".join(f"{r['scaled']:.0f}" for r in runs)
                print(f"| {factor} | {'none' if bound == '0' else bound} | {median([r['offered'] for r in runs]):.0f} | "
                      f"{good:.0f} | {each} | "
                      f"{sum(r['failed'] for r in runs)} | {sum(refused):.0f} | {sum(waited):.0f} | "
                      f"{show(median([r['p99'] for r in runs]), '.0f')} | "
                      f"{show(median([r['cpu'][0] * 100 for r in runs if r['cpu']]), '.0f', ' %')} | "
                      f"{show(median([r['cpu'][1] * 100 for r in runs if r['cpu'] and r['cpu'][1] is not None]), '.0f', ' %')} | "
                      f"{show(median([r['generator'] * 100 for r in runs if r['generator'] is not None]), '.0f', ' %')} | "
                      f"{show(median([r['scaled'] for r in runs]), '.0f')}{each_scaled} |")
                scaled = median([r["scaled"] for r in runs])
                if scaled is not None:
                    scaled_peak[bound] = max(scaled_peak.get(bound, 0), scaled)
            f.write(" ".join(row) + "\n")
    print()
    top = FACTORS[-1]
    for bound in bounds:
        runs = steps[bound].get(top, [])
        if not runs or not peak.get(bound):
            continue
        good = median([r["good"] for r in runs])
        print(f"At {top}× ({'no bound' if bound == '0' else 'maxHandshakes ' + bound}): {good:.0f} tunnels/s, "
              f"{100 * good / peak[bound]:.0f} % of the curve's peak ({peak[bound]:.0f}).")
        # How much the highest of the medians lifts the peak at this run's spread: the figure a
        # curve flat from 1× up would read here (test/bench/overload_pool.py pools runs instead).
        flat = [f for f in FACTORS if float(f) >= 1 and steps[bound].get(f)]
        sd = overload_pool.spread([{f: {i: r["good"] for i, r in enumerate(steps[bound][f])} for f in flat}],
                                  set(flat))
        if sd is not None and len(flat) >= 2 and len(runs) >= 2:
            sim = overload_pool.simulate([1.0] * (len(flat) - 1), sd, len(runs), trials=4000)
            print(f"The peak is the highest of {len(flat)} medians (1× up) of {len(runs)} runs, each step off by "
                  f"{100 * sd:.0f} % (a standard deviation) about its factor's mean in this run: a curve flat from 1× up would read "
                  f"{100 * sim[len(sim) // 2]:.0f} % at {top}× here (simulated; 5th–95th percentile "
                  f"{100 * sim[len(sim) // 20]:.0f}–{100 * sim[-len(sim) // 20]:.0f} %). "
                  "test/bench/overload_pool.py pools runs without that lift.")
        scaled = median([r["scaled"] for r in runs])
        if scaled is not None and scaled_peak.get(bound):
            # Whether the probe tracks the relay: within each factor (same load), the runs' probe
            # units against the relay's CPU per tunnel served; and the probe's median per factor
            # (flat, if the load beside it on core 0 does not slow it).
            xs, ys = [], []
            for f in FACTORS:
                sat = [r for r in steps[bound].get(f, []) if r["slowness"] and r["cpu"] and r["cpu"][0] >= 0.95
                       and r["good"] > 0]
                if len(sat) < 2:
                    continue
                per = [r["cpu"][0] / r["good"] for r in sat]
                mx, my = sum(r["slowness"] for r in sat) / len(sat), sum(per) / len(per)
                xs += [r["slowness"] / mx - 1 for r in sat]
                ys += [p / my - 1 for p in per]
            sxx, syy = sum(x * x for x in xs), sum(y * y for y in ys)
            corr = sum(x * y for x, y in zip(xs, ys)) / (sxx * syy) ** 0.5 if sxx > 0 and syy > 0 else None
            by_factor = " / ".join(f"{show(median([r['slowness'] for r in steps[bound].get(f, [])]), '.0f')}"
                                   for f in FACTORS)
            print(f"At the run's usual speed (each step where the relay used its share scaled by "
                  f"test/bench/speed_probe's median unit then against its median over the run's steps, {usual:.0f} µs; "
                  f"the probe's median by factor {by_factor} µs; within a factor, the runs' probe units and the relay's "
                  f"CPU per tunnel correlate at {show(corr, '.2f')} over {len(xs)} runs): {scaled:.0f} tunnels/s at "
                  f"{top}×, {100 * scaled / scaled_peak[bound]:.0f} % of that curve's peak ({scaled_peak[bound]:.0f}).")
        # What a refusal costs, all in, from the same run: over every run from 1× up (the relay
        # at its share throughout), the relay's CPU per tunnel served against the refusals and
        # sheds per tunnel served, fitted to a line. Its slope is the CPU of one refusal, its
        # intercept that of a tunnel; with them, the goodput that refusing at accept leaves at
        # the top factor.
        points = [(sum(r["counts"][:2]) / (r["good"] * step), r["cpu"][0] * float(share) / 100 * 1e6 / r["good"])
                  for f in FACTORS if float(f) >= 1 for r in steps[bound].get(f, [])
                  if r["counts"] is not None and r["cpu"] is not None and r["good"] > 0]
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        if len(points) >= 3 and max(xs) - min(xs) > 0.5:
            mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
            sxx = sum((x - mx) ** 2 for x in xs)
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
            base = my - slope * mx
            se = (sum((y - base - slope * x) ** 2 for x, y in zip(xs, ys)) / (len(xs) - 2) / sxx) ** 0.5
            x4 = median([sum(r["counts"][:2]) / (r["good"] * step) for r in runs if r["counts"] and r["good"] > 0])
            if x4 is not None:
                cap = lambda c: 100 * base / (base + c * x4)
                print(f"Fit over the {len(points)} runs from 1× up: the relay's CPU per tunnel served = {base:.0f} µs + "
                      f"{slope:.1f} µs (± {se:.1f}) × the connections refused or shed per tunnel served. So a refusal "
                      f"costs about {slope:.0f} µs all in (accept, reset, teardown, the loop's turn; on loopback also the "
                      f"client's side of the reset), and at {top}×, {x4:.1f} refused per tunnel served, refusing at "
                      f"accept leaves at most {cap(slope):.0f} % ({cap(slope + se):.0f} – {cap(max(slope - se, 0)):.0f} %) "
                      f"of the goodput the same CPU gives without refusing; measured: {100 * good / peak[bound]:.0f} % "
                      "of the peak.")
        if bound == "0":
            refusal_floor(runs, peak[bound], steps[bound])
        name = f"overload-{bound}-profile-{top}.share"
        profiled = steps[bound].get(f"{top}-profile", [])
        if not exists(name) or not profiled or profiled[0]["counts"] is None:
            continue
        # The floor under that figure, from the profiled run (not in the medians): what refusing
        # took of the relay's CPU — its accept4 samples in proportion to the connections refused
        # among those it took from the kernel, and the samples sending a reset. A lower bound (the
        # rest of such a close, the socket's teardown, is not counted), so the ceiling it gives
        # is an upper one.
        counts = json.load(open(path(name)))
        refused_at_accept, shed, handshakes, abandoned = profiled[0]["counts"]
        taken = refused_at_accept + shed + handshakes + abandoned
        if counts["samples"] == 0 or taken == 0:
            continue
        refused = refused_at_accept + shed
        if refused == 0:
            continue  # nothing refused (the bound leaves the excess in the kernel's queue)
        refusing = (counts["accept4"] * refused / taken + counts["reset"]) / counts["samples"]
        print(f"Profile of one more {top}× run, under perf and left out of the table ({profiled[0]['good']:.0f} "
              f"tunnels/s; {counts['samples']} samples of the relay's processes): refusing took at least "
              f"{100 * refusing:.1f} % of the relay's CPU (accept4 {100 * counts['accept4'] / counts['samples']:.1f} %, "
              f"{100 * refused / taken:.0f} % of the connections taken being refused or shed; sending resets "
              f"{100 * counts['reset'] / counts['samples']:.1f} %). With refusal at accept as the way to shed, "
              f"goodput at {top}× can reach at most about {100 * (1 - refusing):.0f} % of what the same CPU serves "
              "without refusing.")
    print()

if "paired" in scenarios and exists("paired.factors"):
    import overload_paired  # noqa: E402
    print("## Overload read side by side (scenario paired)\n")
    try:
        loaded = overload_paired.load(out)
        low, high, rounds, _ = loaded
        text, _ = overload_paired.report(out, loaded=loaded)
    except (OSError, ValueError) as e:
        text, rounds = f"Unreadable: {e}", {}
    print(text)
    print()
    rows = [f"{r} {rounds[r][low]['good']:.1f} {rounds[r][high]['good']:.1f}\n"
            for r in sorted(rounds) if low in rounds[r] and high in rounds[r]]
    if rows:  # (gnuplot stops at a file without points, and the chart with it)
        with open(path("chart-paired.dat"), "w") as f:
            f.writelines(rows)

if charts or exists("chart-goodput.dat") or exists("chart-paired.dat"):
    panels = len(charts) + (1 if exists("chart-goodput.dat") else 0) + (1 if exists("chart-paired.dat") else 0)
    script = [f'set terminal svg size {420 * panels},420 font "sans,11" background rgb "white"',
              f'set output "{path("chart.svg")}"',
              f'set multiplot layout 1,{panels} title "Lifecycle at scale: {responders} Responders"',
              "set grid", "set key below"]
    for dat, title in charts:
        script += [f'set title "{title}"', 'set xlabel "s"', 'set ylabel "tunnels"',
                   f'plot "{path(dat)}" using 1:2 with lines lw 2 title "open", '
                   f'"" using 1:3 with impulses title "established per second"']
    if exists("chart-goodput.dat"):
        script += ['set title "Goodput against offered load"', 'set xlabel "offered load (× capacity)"',
                   'set ylabel "tunnels established per second"',
                   f'plot "{path("chart-goodput.dat")}" using 1:2 with linespoints lw 2 title "no bound", '
                   f'"" using 1:3 with linespoints lw 2 title "maxHandshakes {BOUND}"']
    if exists("chart-paired.dat"):
        factors = open(path("paired.factors")).read().split()
        script += ['set title "Side by side, round by round"', 'set xlabel "round"',
                   'set ylabel "tunnels established per second"', "set yrange [0:*]",
                   f'plot "{path("chart-paired.dat")}" using 1:2 with linespoints lw 2 title "{factors[0]}×", '
                   f'"" using 1:3 with linespoints lw 2 title "{factors[1]}×"']
    script.append("unset multiplot")
    subprocess.run(["gnuplot"], input="\n".join(script), text=True, check=False)
    print(f"Chart: {path('chart.svg')}")
