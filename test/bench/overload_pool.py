#!/usr/bin/python3
"""Pool several overload runs of run-lifecycle.sh and estimate goodput at the top factor
against the peak, from every round of every run.

    overload_pool.py [--top 4] [--goal 0.9] RUN_DIR...

Each RUN_DIR is a run's output (build/release/bench-lifecycle, or a copy), with its steps as
overload-0-FACTOR-ROUND.json (the relay without maxHandshakes). One run's report compares the
median at the top factor with the highest of the factors' medians. On a machine whose speed
swings from one step to the next, that highest median reads high: this script says by how much.

- Paired: each round's run of the top factor against the same round's run of another factor
  at which the relay was saturated, as a ratio; pooled over the runs, the median ratio and a
  distribution-free 95 % interval for it (order statistics: each ratio falls either side of the
  median with even odds).
- The spread: each step's goodput against the mean of its factor's runs in its run, pooled
  over the factors compared (the relative standard deviation of one step).
- The single run's figure, simulated: with that spread, the rounds of a typical run, and each
  factor where the paired medians put it against the top, how a run's median at the top over its
  highest median reads (its median, 5th-95th percentile, and how often below the goal).
"""
import json
import math
import os
import random
import re
import statistics
import sys

USAGE = "usage: overload_pool.py [--top 4] [--goal 0.9] RUN_DIR..."
STEP = re.compile(r"^overload-0-([0-9.]+)-([0-9]+)\.json$")


def load_run(directory):
    """{factor: {round: goodput a second}} from a run's steps."""
    steps = {}
    for name in os.listdir(directory):
        m = STEP.match(name)
        if not m:
            continue
        path = os.path.join(directory, name)
        with open(path) as f:
            try:
                d = json.load(f)
                seconds, succeeded = float(d["seconds"]), float(d["succeeded"])
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{path}: not a step's report ({type(e).__name__}: {e})") from None
        if not seconds > 0:
            raise ValueError(f"{path}: no duration")
        steps.setdefault(m.group(1), {})[int(m.group(2))] = succeeded / seconds
    return steps


def median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def median_interval(values, coverage=0.95):
    """The k-th lowest and k-th highest of values, k as large as keeps the chance that they
    bracket the median at `coverage` or more; None when even the extremes fall short."""
    v, n = sorted(values), len(values)
    below = lambda k: sum(math.comb(n, i) for i in range(k)) / 2 ** n  # P(fewer than k below)
    ks = [k for k in range(1, n // 2 + 1) if 1 - 2 * below(k) >= coverage]
    if not ks:
        return None
    k = max(ks)
    return v[k - 1], v[n - k], 1 - 2 * below(k)


def paired(runs, top, base):
    """Each round's top-factor goodput over the same round's base-factor goodput, all runs."""
    ratios = []
    for steps in runs:
        for round_, good in steps.get(top, {}).items():
            other = steps.get(base, {}).get(round_)
            if other:
                ratios.append(good / other)
    return ratios


def spread(runs, factors):
    """The relative standard deviation of one step about its factor's mean in its run, over the
    given factors."""
    devs = []
    for steps in runs:
        for factor, rounds in steps.items():
            if factor in factors and len(rounds) >= 2:
                mean = statistics.mean(rounds.values())
                devs += [g / mean - 1 for g in rounds.values()]
    return statistics.stdev(devs) if len(devs) >= 3 else None


def single_run_figure(runs, top):
    """One run's figure as its report gives it: the top factor's median over the highest median."""
    out = []
    for steps in runs:
        if top in steps:
            medians = {f: median(r.values()) for f, r in steps.items()}
            out.append(medians[top] / max(medians.values()))
    return out


def simulate(levels, sd, rounds, trials=20000, seed=1):
    """The single-run figure's distribution: the top factor at 1, the others at `levels` (the
    pooled estimate of each against the top), each step off by a normal error of relative sd."""
    rng = random.Random(seed)
    out = []
    for _ in range(trials):
        medians = [median([level * (1 + rng.gauss(0, sd)) for _ in range(rounds)]) for level in levels]
        top = median([1 + rng.gauss(0, sd) for _ in range(rounds)])
        out.append(top / max(medians + [top]))
    return sorted(out)


def main(argv):
    top, goal, dirs = "4", 0.9, []
    args = iter(argv)
    for a in args:
        if a in ("--top", "--goal"):
            value = next(args, None)
            if value is None:
                print(f"{a} needs a value", file=sys.stderr)
                return 2
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if not 0 < number < 100:
                print(f"{a}: not a number above 0 and below 100: {value}", file=sys.stderr)
                return 2
            if a == "--top":
                top = f"{number:g}"
            else:
                goal = number
        elif a.startswith("-"):
            print(f"unknown option {a}\n{USAGE}", file=sys.stderr)
            return 2
        else:
            dirs.append(a)
    if not dirs:
        print(USAGE, file=sys.stderr)
        return 2
    runs = []
    for d in dirs:
        try:
            steps = load_run(d)
        except (OSError, ValueError) as e:
            print(e, file=sys.stderr)
            return 1
        if top not in steps:
            print(f"{d}: no step at {top}×", file=sys.stderr)
            return 1
        runs.append(steps)
    pct = lambda x: f"{100 * x:.1f} %"
    print(f"{len(runs)} runs, {sum(len(r) for s in runs for r in s.values())} steps.")
    levels = {}  # each factor's pooled level against the top
    bases = sorted({f for s in runs for f in s if f != top and float(f) >= 1}, key=float)
    for base in bases:
        ratios = paired(runs, top, base)
        interval = median_interval(ratios)
        if interval is None:
            print(f"{top}× / {base}×: {len(ratios)} pairs, too few for a 95 % interval")
            continue
        low, high, cover = interval
        levels[base] = 1 / median(ratios)
        print(f"{top}× / {base}×, paired by round: {len(ratios)} pairs, median {pct(median(ratios))} "
              f"({pct(low)} – {pct(high)}, {100 * cover:.1f} % interval for the median), "
              f"{sum(r < goal for r in ratios)} of them below {100 * goal:.0f} %")
    figures = single_run_figure(runs, top)
    print("Each run's own figure (median at the top over the highest median): "
          + " / ".join(f"{100 * x:.0f} %" for x in figures) + f"; median {pct(median(figures))}")
    sd = spread(runs, set(levels) | {top})
    if sd is None or not levels:
        return 0
    rounds = round(statistics.median(len(s[top]) for s in runs))
    truth = 1 / max(list(levels.values()) + [1])
    sim = simulate(list(levels.values()), sd, rounds)
    n = len(sim)
    print(f"One step's spread about its factor's mean: {pct(sd)}. Simulated: a run of {rounds} rounds whose "
          f"factors stand against the top as the paired medians say (the top at {pct(truth)} of the highest) "
          f"reads a median of {pct(sim[n // 2])} (5th–95th percentile {pct(sim[n // 20])} – {pct(sim[-n // 20])}), "
          f"below {100 * goal:.0f} % in {100 * sum(x < goal for x in sim) / n:.0f} % of runs.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
