#!/usr/bin/python3
"""Pool several overload runs of run-lifecycle.sh and estimate goodput at the top factor
against the peak, from every step of every run.

    overload_pool.py [--top 4] [--goal 0.9] [--export CSV] RUN_DIR|CSV...

A RUN_DIR is a run's output (build/release/bench-lifecycle, or a copy), with its steps as
overload-0-FACTOR-ROUND.json (the relay without maxHandshakes). A CSV is what --export wrote
(docs/bench/overload-steps.csv holds the runs BENCHMARKS.md pools). One run's report compares
the median at the top factor with the highest of its factors' medians; on a machine whose
speed swings from one step to the next, that highest median reads high.

- Saturated: a step that served under 97 % of what it was offered. A factor takes part in a
  run only if all its steps there were saturated (below that, its goodput is what was
  offered, not what the relay can do).
- The model: log goodput = the run's level + the factor's level + noise, fitted by least
  squares over every saturated step (alternating means). The top against each other factor is
  exp(its level - that factor's level); the interval resamples whole runs (a cluster
  bootstrap, 2,000 draws), since the steps of one run share its capacity and its "4x".
- Same-round pairs: each round's top step over the same round's step of another factor,
  the median of those ratios, and an order-statistics interval for it (it assumes independent
  ratios; rounds of a full run put the two steps 23 to 92 s apart).
- The spread: the model's residual standard deviation (degrees of freedom counted).
- The single run's figure, simulated with that spread, the factors where the model puts them
  and the rounds of a typical run: what a run's median at the top over its highest median
  reads (median, 5th-95th percentile, how often below the goal). Agreement with the runs'
  own figures means the two are consistent, not that either is right.
"""
import csv
import json
import math
import os
import random
import re
import stat
import statistics
import sys

USAGE = "usage: overload_pool.py [--top 4] [--goal 0.9] [--export CSV] RUN_DIR|CSV..."
STEP = re.compile(r"^overload-0-([0-9]+(?:\.[0-9]+)?)-([1-9][0-9]*)\.json$")
FIELDS = ["run", "factor", "round", "seconds", "started", "succeeded"]
MAX_FILE = 1 << 20  # a step's report is under a kilobyte; a CSV of many runs well under this


def read_small(path):
    """A regular file's text, refusing anything else (a FIFO would hang, /dev/zero never end)."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{path}: not a regular file")
    if st.st_size > MAX_FILE:
        raise ValueError(f"{path}: larger than {MAX_FILE} bytes")
    with open(path) as f:
        return f.read(MAX_FILE + 1)


def number(value, what, path):
    """A finite number >= 0, or ValueError naming the file."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: {what} is not a number: {value!r}") from None
    if not math.isfinite(x) or x < 0:
        raise ValueError(f"{path}: {what} is not a finite number >= 0: {value!r}")
    return x


def step(path, seconds, started, succeeded):
    seconds, started, succeeded = (number(v, w, path) for v, w in
                                   ((seconds, "seconds"), (started, "started"), (succeeded, "succeeded")))
    if seconds == 0:
        raise ValueError(f"{path}: no duration")
    if succeeded > started:
        raise ValueError(f"{path}: more succeeded ({succeeded:g}) than started ({started:g})")
    return {"good": succeeded / seconds, "offered": started / seconds, "seconds": seconds,
            "started": started, "succeeded": succeeded}


def add(steps, path, factor, round_, s):
    factor = f"{float(factor):g}"  # 4.0 is 4
    cell = steps.setdefault(factor, {})
    if round_ in cell:
        raise ValueError(f"{path}: a second step {factor}× round {round_}")
    cell[round_] = s


def load_dir(directory):
    """{factor: {round: step}} from a run's reports."""
    steps = {}
    for name in sorted(os.listdir(directory)):
        m = STEP.match(name)
        if not m:
            continue
        path = os.path.join(directory, name)
        try:
            d = json.loads(read_small(path))
            s = step(path, d["seconds"], d["started"], d["succeeded"])
        except (KeyError, TypeError) as e:
            raise ValueError(f"{path}: not a step's report ({type(e).__name__}: {e})") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not JSON ({e})") from None
        add(steps, path, m.group(1), int(m.group(2)), s)
    return steps


def load_csv(path):
    """{run: {factor: {round: step}}} from an export."""
    runs = {}
    rows = csv.DictReader(read_small(path).splitlines())
    if rows.fieldnames != FIELDS:
        raise ValueError(f"{path}: the header is not {','.join(FIELDS)}")
    for i, row in enumerate(rows, 2):
        where = f"{path}:{i}"
        if None in row or None in row.values() or not row["run"]:
            raise ValueError(f"{where}: not {len(FIELDS)} fields")
        if not re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", row["factor"]) or not re.fullmatch(r"[1-9][0-9]*", row["round"]):
            raise ValueError(f"{where}: not a factor and a round: {row['factor']!r}, {row['round']!r}")
        add(runs.setdefault(row["run"], {}), where, row["factor"], int(row["round"]),
            step(where, row["seconds"], row["started"], row["succeeded"]))
    return runs


def median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def median_interval(values, coverage=0.95):
    """The k-th lowest and k-th highest of values, k as large as keeps the chance that they
    bracket the median at `coverage` or more (independent values); None when even the extremes
    fall short."""
    v, n = sorted(values), len(values)
    below = lambda k: sum(math.comb(n, i) for i in range(k)) / 2 ** n  # P(fewer than k below)
    ks = [k for k in range(1, n // 2 + 1) if 1 - 2 * below(k) >= coverage]
    if not ks:
        return None
    k = max(ks)
    return v[k - 1], v[n - k], 1 - 2 * below(k)


def saturated(runs, top):
    """Per run, the factors whose every step was saturated (the top always counts: it is the
    point asked about), with their steps' goodputs: {run: {factor: {round: goodput}}}."""
    out = {}
    for name, steps in runs.items():
        kept = {}
        for factor, rounds in steps.items():
            if factor == top or all(s["good"] < 0.97 * s["offered"] for s in rounds.values()):
                kept[factor] = {r: s["good"] for r, s in rounds.items()}
        out[name] = kept
    return out


def fit(cells):
    """Least squares of log goodput = run level + factor level over every step with goodput
    above 0, by alternating means. Returns ({factor: level}, residual sd or None)."""
    obs = [(run, f, math.log(g)) for run, steps in cells.items() for f, rounds in steps.items()
           for g in rounds.values() if g > 0]
    if not obs:
        return {}, None
    runs = sorted({o[0] for o in obs})
    factors = sorted({o[1] for o in obs}, key=float)
    by_run = {r: [(f, y) for run, f, y in obs if run == r] for r in runs}
    by_factor = {f: [(r, y) for r, ff, y in obs if ff == f] for f in factors}
    a, b = dict.fromkeys(runs, 0.0), dict.fromkeys(factors, 0.0)
    for _ in range(1000):
        for r, ys in by_run.items():
            a[r] = sum(y - b[f] for f, y in ys) / len(ys)
        shift = 0.0
        for f, ys in by_factor.items():
            new = sum(y - a[r] for r, y in ys) / len(ys)
            shift = max(shift, abs(new - b[f]))
            b[f] = new
        if shift < 1e-10:
            break
    dof = len(obs) - len(runs) - len(factors) + 1
    sse = sum((y - a[r] - b[f]) ** 2 for r, f, y in obs)
    return b, (math.sqrt(sse / dof) if dof > 0 else None)


def simulate(levels, sd, rounds, trials=20000, seed=1):
    """The single-run figure's distribution: the top factor at 1, the others at `levels` (each
    against the top), each step off by a normal error of relative sd, drawn on its own."""
    rng = random.Random(seed)
    out = []
    for _ in range(trials):
        medians = [median([level * (1 + rng.gauss(0, sd)) for _ in range(rounds)]) for level in levels]
        top = median([1 + rng.gauss(0, sd) for _ in range(rounds)])
        out.append(top / max(medians + [top]))
    return sorted(out)


def spread(runs, factors):
    """One step's relative standard deviation about its factor's mean in its run, over the
    given factors, with the degrees of freedom the means take counted. runs: [{factor: {round:
    goodput}}]."""
    sse, n, cells = 0.0, 0, 0
    for steps in runs:
        for factor, rounds in steps.items():
            if factor in factors and len(rounds) >= 2:
                mean = statistics.mean(rounds.values())
                if mean > 0:
                    sse += sum((g / mean - 1) ** 2 for g in rounds.values())
                    n, cells = n + len(rounds), cells + 1
    return math.sqrt(sse / (n - cells)) if n > cells else None


def parse(argv):
    top, goal, export, sources = "4", 0.9, None, []
    args = iter(argv)
    for a in args:
        if a in ("--top", "--goal", "--export"):
            value = next(args, None)
            if value is None:
                raise SystemExit(f"{a} needs a value\n{USAGE}")
            if a == "--export":
                export = value
                continue
            try:
                x = float(value)
            except ValueError:
                x = math.nan
            if a == "--top" and not 0 < x < 100:
                raise SystemExit(f"--top: not a factor above 0 and below 100: {value}")
            if a == "--goal" and not 0 < x <= 1:
                raise SystemExit(f"--goal: not a share above 0 and at most 1: {value}")
            if a == "--top":
                top = f"{x:g}"
            else:
                goal = x
        elif a.startswith("-"):
            raise SystemExit(f"unknown option {a}\n{USAGE}")
        else:
            sources.append(a)
    if not sources:
        raise SystemExit(USAGE)
    return top, goal, export, sources


def load(sources):
    """{run: {factor: {round: step}}} from run directories and exports, each run once."""
    runs, seen = {}, set()
    for source in sources:
        real = os.path.realpath(source)
        if real in seen:
            raise ValueError(f"{source}: named twice")
        seen.add(real)
        found = {os.path.basename(real.rstrip("/")): load_dir(source)} if os.path.isdir(source) else load_csv(source)
        for name, steps in found.items():
            if name in runs:
                raise ValueError(f"{source}: a second run named {name}")
            runs[name] = steps
    return runs


def write_csv(path, runs):
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(FIELDS)
        for name in sorted(runs):
            for factor in sorted(runs[name], key=float):
                for round_, s in sorted(runs[name][factor].items()):
                    w.writerow([name, factor, round_, f"{s['seconds']:g}", f"{s['started']:g}", f"{s['succeeded']:g}"])
    os.replace(tmp, path)


def main(argv):
    try:
        top, goal, export, sources = parse(argv)
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 2
    try:
        runs = load(sources)
    except (OSError, ValueError) as e:
        print(e, file=sys.stderr)
        return 1
    lacking = [name for name, steps in runs.items() if top not in steps]
    if lacking:
        print(f"no step at {top}× in {', '.join(lacking)}", file=sys.stderr)
        return 1
    if export:
        write_csv(export, runs)
    pct = lambda x: f"{100 * x:.1f} %"
    cells = saturated(runs, top)
    print(f"{len(runs)} runs, {sum(len(r) for s in runs.values() for r in s.values())} steps; saturated "
          f"factors in every run but: "
          + (", ".join(f"{f}× in {n}" for n in sorted(runs) for f in sorted(runs[n], key=float)
                       if f not in cells[n]) or "none") + ".")
    levels, sd = fit(cells)
    bases = [f for f in levels if f != top]
    rng = random.Random(2)
    names = sorted(cells)
    draws = []
    for _ in range(2000):
        pick = [rng.choice(names) for _ in names]
        draws.append(fit({f"{i}": cells[n] for i, n in enumerate(pick)})[0])
    estimate = {}
    for base in bases:
        ratio = math.exp(levels[top] - levels[base])
        estimate[base] = ratio
        got = sorted(math.exp(d[top] - d[base]) for d in draws if top in d and base in d)
        band = f"{pct(got[len(got) // 40])} – {pct(got[-len(got) // 40 - 1])}" if len(got) >= 100 else "too few runs"
        in_runs = sum(1 for n in names if base in cells[n])
        print(f"{top}× / {base}×, the model: {pct(ratio)} (95 % over runs resampled: {band}; {in_runs} runs)")
    for base in bases:
        ratios = sorted(cells[n][top][r] / cells[n][base][r] for n in names if base in cells[n]
                        for r in cells[n][top] if cells[n][base].get(r))
        interval = median_interval(ratios)
        text = "too few for an interval" if interval is None else \
            f"{pct(interval[0])} – {pct(interval[1])}, a {100 * interval[2]:.1f} % interval if independent"
        if ratios:
            print(f"{top}× / {base}×, same-round pairs: {len(ratios)}, median {pct(median(ratios))} ({text}), "
                  f"{sum(r < goal for r in ratios)} below {100 * goal:.0f} %")
    figures = []
    for n in names:
        medians = {f: median(s["good"] for s in r.values()) for f, r in runs[n].items()}
        figures.append(medians[top] / max(medians.values()) if max(medians.values()) > 0 else 0.0)
    print("Each run's own figure (median at the top over the highest median): "
          + " / ".join(f"{100 * x:.0f} %" for x in figures) + f"; median {pct(median(figures))}")
    if sd is None or not estimate:
        print("Too few steps for the spread and the simulation.")
        return 0
    rounds = round(statistics.median(len(runs[n][top]) for n in names))
    sim = simulate([1 / r for r in estimate.values()], sd, rounds)
    n = len(sim)
    print(f"The model's residual spread: {pct(sd)} a step (standard deviation of log goodput). Simulated: a run of "
          f"{rounds} rounds whose factors stand as the model says (the top at {pct(min(estimate.values()))} of the "
          f"highest) reads a median of {pct(sim[n // 2])} (5th–95th percentile {pct(sim[n // 20])} – "
          f"{pct(sim[-n // 20])}), below {100 * goal:.0f} % in {100 * sum(x < goal for x in sim) / n:.0f} % of runs.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
