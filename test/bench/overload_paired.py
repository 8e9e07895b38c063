#!/usr/bin/python3
"""Read a paired overload run of run-lifecycle.sh (scenario "paired") against issue 19's goal:
goodput at 4x at least 90 % of the peak.

    overload_paired.py [--goal 0.9] RUN_DIR

The run: two identical relays, each one worker in a CPU cgroup of the same share of core 0, each
with a generator of its own on core 1. In every round one relay is offered the low factor of
PAIR_FACTORS (the peak, 1.5x: the highest factor level of the nine sequential runs pooled in
BENCHMARKS.md) and the other the high one (4x), for the same seconds, side by side; the next
round swaps them. Sequential runs read the same step's goodput 12 % apart from one step to the
next because the VM's core changes speed; two steps that run at once share that speed.

The peak is taken to be at the low factor, not measured again: the paired run compares two
factors, it does not look for the peak between them.

The rule, fixed before the run that decides and applied as written:

- The unit is a block: rounds 2k-1 and 2k, in which each relay had each factor once. Its value
  is the mean over its two rounds of log(goodput at the high factor / goodput at the low one),
  goodput being the tunnels a step established over its seconds. What differs between the two
  relays cancels within a block.
- The estimate is exp(the blocks' mean); its 95 % interval exp(mean +/- t(0.975, n-1) * sd /
  sqrt(n)) over the n blocks.
- Shown met if the interval's lower end is at least the goal; shown not met if its upper end is
  below it; otherwise not decided. A round whose step files are missing or broken drops its
  block, and the report says so.
- The run that decides is the first one made with this rule:
      RELAY_CPU=15 ROUNDS=40 STEP_SECONDS=30 PAIR_FACTORS="1.5 4" \
          test/bench/run-lifecycle.sh build/release 1000 paired
  on the product of commit 8a0e22b (the relay binary unchanged since). Only a smoke run of the
  scenario's mechanics came before it (two rounds of 5 s, one closed loop for the capacity); its
  figures are not used. (Added after the run: there were two such smoke runs, the second
  beside a smoke run of the overload scenario, one closed loop at 64; neither's figures are
  used.) No other run is pooled
  into it, and it is not repeated to change its verdict; a run that breaks (a relay gone, no
  capacity) is reported as broken, and so is the re-run that replaces it.
- Checks the report gives beside the verdict, without changing it: whether each relay used its
  whole share in every step (so that the step measured the relay, not the generator), how busy
  core 1 was (the generators'), and how much of core 0 went to softirq (work the kernel may
  charge to whichever relay is running, the bound on one relay's load showing in the other's
  CPU).
"""
import json
import math
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from overload_pool import number, read_small, step  # noqa: E402

USAGE = "usage: overload_paired.py [--goal 0.9] RUN_DIR"
STEP = re.compile(r"^paired-([0-9]+(?:\.[0-9]+)?)-([1-9][0-9]*)\.json$")
FULL_SHARE = 0.97  # a step that used less of its share had idle time: not the relay's limit


def betainc(a, b, x):
    """The regularized incomplete beta function I_x(a, b), by its continued fraction."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - betainc(b, a, 1.0 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(1 - x)) / a
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * f


def t_cdf(t, df):
    tail = 0.5 * betainc(df / 2, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p, df):
    """Student's t quantile (0 < p < 1, df >= 1), by bisection on its distribution function."""
    if not 0 < p < 1 or df < 1:
        raise ValueError(f"no t quantile for p={p}, df={df}")
    lo, hi = -1e6, 1e6
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def verdict(values, goal):
    """The blocks' log ratios -> (estimate, low, high, n, sd, what it says of the goal)."""
    n = len(values)
    if n < 2:
        return None, None, None, n, None, "not decided: fewer than two blocks"
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(0.975, n - 1) * sd / math.sqrt(n)
    low, high = math.exp(mean - half), math.exp(mean + half)
    if low >= goal:
        said = "shown met"
    elif high < goal:
        said = "shown not met"
    else:
        said = "not decided"
    return math.exp(mean), low, high, n, sd, said


def load(directory):
    """The run's factors, its rounds {round: {factor: step with "side", "share"}}, and what broke."""
    factors = read_small(os.path.join(directory, "paired.factors")).split()
    if len(factors) != 2:
        raise ValueError(f"{directory}/paired.factors: two factors expected, got {factors!r}")
    low, high = (f"{number(f, 'a factor', directory + '/paired.factors'):g}" for f in factors)
    if float(low) >= float(high):
        raise ValueError(f"{directory}/paired.factors: the low factor {low} is not below {high}")
    share = relay_share(directory)
    rounds, broken = {}, []
    for name in sorted(os.listdir(directory)):
        m = STEP.match(name)
        if not m:
            continue
        factor, round_ = f"{float(m.group(1)):g}", int(m.group(2))
        path = os.path.join(directory, name)
        if factor not in (low, high):
            broken.append(f"{name}: factor {factor} is not one of {low} and {high}")
            continue
        try:
            try:
                data = json.loads(read_small(path))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: {e}") from None
            if not isinstance(data, dict):
                raise ValueError(f"{path}: not a JSON object")
            s = step(path, data.get("seconds"), data.get("started"), data.get("succeeded"))
            s["p99"] = p99(data)
            base = path[:-len(".json")]
            s["side"] = read_small(base + ".relay").strip()
            if s["side"] not in ("a", "b"):
                raise ValueError(f"{base}.relay: neither a nor b: {s['side']!r}")
            s["cpu"] = cpu_samples(base + ".cpu")
            s["share"] = (s["cpu"][5] - s["cpu"][1]) / 1e9 / (s["cpu"][4] - s["cpu"][0]) / share
        except (OSError, ValueError) as e:
            broken.append(str(e))
            continue
        if factor in rounds.get(round_, {}):
            broken.append(f"{path}: round {round_} of factor {factor} named twice")
            continue
        rounds.setdefault(round_, {})[factor] = s
    return low, high, rounds, broken


def relay_share(directory):
    """Each relay's share of a core (RELAY_CPU / 100), from paired.relayCpu."""
    share = number(read_small(os.path.join(directory, "paired.relayCpu")).strip(), "the share",
                   directory + "/paired.relayCpu") / 100
    if share <= 0:
        raise ValueError(f"{directory}/paired.relayCpu: no share")
    return share


def upper_median(values):
    """The upper of the two middle values (the report's figures beside a range)."""
    v = sorted(values)
    return v[len(v) // 2]


def p99(data):
    """The p99 of a step's whole tunnels (µs), or None."""
    latency = data.get("latencyUs")
    total = latency.get("total") if isinstance(latency, dict) else None
    value = total.get("p99") if isinstance(total, dict) else None
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def cpu_samples(path):
    """A step's two samples of its relay's cgroup: [t0, ns0, periods0, throttled0, t1, ns1, ...]."""
    v = [number(x, "a CPU sample", path) for x in read_small(path).split()]
    if len(v) != 8 or v[4] <= v[0] or v[5] < v[1]:
        raise ValueError(f"{path}: not two CPU samples in time order")
    return v


def gaps(rounds, share):
    """Each relay's use of its share between its step of one round and its next (the 3 s the
    rounds leave to drain): {factor it had before the gap: [shares]}. Near 0, what a step left
    behind was done before the next began."""
    out = {}
    for r in sorted(rounds):
        for factor, s in rounds[r].items():
            nxt = [t for t in rounds.get(r + 1, {}).values() if t["side"] == s["side"]]
            if not nxt:
                continue
            (t0, u0), (t1, u1) = (s["cpu"][4], s["cpu"][5]), (nxt[0]["cpu"][0], nxt[0]["cpu"][1])
            if t1 > t0 and u1 >= u0:
                out.setdefault(factor, []).append((u1 - u0) / 1e9 / (t1 - t0) / share)
    return out


def core(path, fields):
    """A before/after pair of core samples -> its figures' differences, or None."""
    try:
        v = [number(x, "a core sample", path) for x in read_small(path).split()]
    except (OSError, ValueError):
        return None
    if len(v) != 2 * fields:
        return None
    return [v[fields + i] - v[i] for i in range(fields)]


def softirq(directory, rounds, share):
    """From the rounds traced with SOFTIRQ_TRACE (paired-R.softirq.json, softirq_share.py's tally,
    and paired.pids): per factor, [(softirq the relay that had it paid on the way out of
    interrupts, in its own calls)], each as a share of its CPU share."""
    try:
        side_of = {}
        for line in read_small(os.path.join(directory, "paired.pids")).splitlines():
            side, *tids = line.split()
            side_of.update({tid: side for tid in tids})
    except (OSError, ValueError):
        return {}
    out = {}
    for r in sorted(rounds):
        name = os.path.join(directory, f"paired-{r}.softirq.json")
        if not os.path.exists(name):
            continue
        try:
            data = json.loads(read_small(name))
            seconds = number(data["seconds"], "seconds", name)
            paid = {"a": [0.0, 0.0], "b": [0.0, 0.0]}
            for tid, task in data["tasks"].items():
                if side_of.get(tid) in paid:
                    paid[side_of[tid]][0] += number(task["interrupt"], "interrupt", name)
                    paid[side_of[tid]][1] += number(task["own"], "own", name)
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        if seconds <= 0:
            continue
        for factor, s in rounds[r].items():
            interrupt, own = paid[s["side"]]
            out.setdefault(factor, []).append((interrupt / (seconds * 1e6 * share), own / (seconds * 1e6 * share)))
    return out


def handshakes(directory, side, round_):
    """A relay's TLS handshakes so far, from its /metrics scraped after the round, or None."""
    try:
        text = read_small(os.path.join(directory, f"paired-{side}-{round_}.metrics"))
        return sum(number(line.split()[-1], "a counter", side) for line in text.splitlines()
                   if line.startswith("relaypro_tls_handshakes_total"))
    except (OSError, ValueError, IndexError):
        return None


def labels(directory, rounds):
    """Each step's tunnels against its relay's own handshake count over the round (the
    relay's /metrics before and after): [ratio]. About 1 when a step's files name the relay that
    served it; a swapped label would read the other relay's count."""
    out, read = [], {}

    def count(side, round_):  # each relay's file of a round is read once
        if (side, round_) not in read:
            read[(side, round_)] = handshakes(directory, side, round_)
        return read[(side, round_)]

    for r in sorted(rounds):
        for s in rounds[r].values():
            before, after = count(s["side"], r - 1), count(s["side"], r)
            if before is not None and after is not None and s["succeeded"] > 0:
                out.append((after - before) / s["succeeded"])
    return out


def lag1(values):
    """The blocks' lag-1 autocorrelation (above 0: neighbouring blocks move together, and the
    interval, which takes them as independent, is too narrow), or None."""
    if len(values) < 3:
        return None
    mean = sum(values) / len(values)
    den = sum((v - mean) ** 2 for v in values)
    if den == 0:
        return None
    return sum((values[i] - mean) * (values[i + 1] - mean) for i in range(len(values) - 1)) / den


def blocks(low, high, rounds):
    """Complete blocks: [(first round, the mean of its two rounds' log ratios)]; the first rounds
    of blocks left out (incomplete, or the relays did not swap); and the rounds whose high or low
    step established nothing. A high step that served nothing is a measurement (the collapse the
    goal is about), not a broken file: the report counts it against the goal."""
    out, left, high_zero, low_zero = [], [], [], []
    for first in range(1, max(rounds, default=0) + 1, 2):
        pair = [rounds.get(first), rounds.get(first + 1)]
        whole = all(r is not None and low in r and high in r for r in pair)
        if whole and {r[high]["side"] for r in pair} != {"a", "b"}:
            whole = False  # the relays did not swap
        if not whole:
            left.append(first)
            continue
        for i, r in enumerate(pair):
            if r[low]["good"] == 0:
                low_zero.append(first + i)
            elif r[high]["good"] == 0:
                high_zero.append(first + i)
        if any(r[low]["good"] == 0 or r[high]["good"] == 0 for r in pair):
            continue
        out.append((first, sum(math.log(r[high]["good"] / r[low]["good"]) for r in pair) / 2))
    return out, left, high_zero, low_zero


def report(directory, goal=0.9, loaded=None):
    """The report's text and its verdict; `loaded`: what load(directory) returned, if the caller
    has it already."""
    low, high, rounds, broken = loaded or load(directory)
    share = relay_share(directory)
    done, left, high_zero, low_zero = blocks(low, high, rounds)
    estimate, lo, hi, n, sd, said = verdict([v for _, v in done], goal)
    if low_zero:
        estimate, said = None, f"not decided: the {low}x step served nothing in rounds {listed(low_zero)}"
    elif high_zero:
        estimate, said = None, f"shown not met: the {high}x step served nothing in rounds {listed(high_zero)}"
    lines = [f"Paired overload run ({directory}): {high}x against {low}x, side by side, "
             f"{n} blocks of two rounds."]
    if estimate is None:
        lines.append(f"- Goal ({high}x >= {goal:.0%} of {low}x): {said}.")
    else:
        lines.append(f"- {high}x / {low}x: **{estimate:.1%}** (95 % interval {lo:.1%}-{hi:.1%}; "
                     f"a block's spread {sd:.1%}). Goal (>= {goal:.0%}): **{said}**.")
    correlation = lag1([v for _, v in done])
    if estimate is not None and correlation is not None:
        lines.append(f"- The blocks' lag-1 autocorrelation: {correlation:+.2f} (the interval takes "
                     "them as independent; above 0 it would be too narrow).")
    by_side = {}
    for r in rounds.values():
        if low in r and high in r:
            by_side.setdefault(r[high]["side"], []).append(math.log(r[high]["good"] / r[low]["good"])
                                                            if r[low]["good"] > 0 and r[high]["good"] > 0
                                                            else None)
    for side in sorted(by_side):
        v = [x for x in by_side[side] if x is not None]
        nothing = len(by_side[side]) - len(v)
        if v:
            lines.append(f"- With relay {side} at {high}x: {math.exp(sum(v) / len(v)):.1%} over {len(v)} rounds"
                         + (f", and {nothing} rounds with a step that served nothing." if nothing else "."))
        elif nothing:
            lines.append(f"- With relay {side} at {high}x: {nothing} rounds with a step that served nothing.")
    steps = {f: [r[f] for r in rounds.values() if f in r] for f in (low, high)}
    for factor in (low, high):
        if not steps[factor]:
            continue
        good = [s["good"] for s in steps[factor]]
        offered = [s["offered"] for s in steps[factor]]
        short = sum(1 for s in steps[factor] if s["share"] < FULL_SHARE)
        p99s = [s["p99"] for s in steps[factor] if s["p99"] is not None]
        lines.append(f"- {factor}x: goodput {min(good):.0f}-{max(good):.0f}/s (median {upper_median(good):.0f}), "
                     f"offered {min(offered):.0f}-{max(offered):.0f}/s; "
                     f"steps below {FULL_SHARE:.0%} of the relay's share: {short} of {len(steps[factor])}"
                     + (f"; p99 at most {max(p99s) / 1e6:.2f} s" if p99s else "") + ".")
    if steps[low] and steps[high]:
        offered = upper_median(s["offered"] for s in steps[high])
        served = upper_median(s["good"] for s in steps[low])
        if served > 0:
            lines.append(f"- The {high}x offered (median {offered:.0f}/s) is {offered / served:.2f} times the "
                         f"{low}x goodput (median {served:.0f}/s).")
    try:
        c, rate = read_small(os.path.join(directory, "paired.capacity")).split()
        lines.append(f"- Capacity, closed loops on both relays at once: {float(rate):.0f}/s each "
                     f"(concurrency {c}, the best).")
    except (OSError, ValueError):
        lines.append("- No capacity recorded (paired.capacity).")
    for factor, used in sorted(gaps(rounds, share).items()):
        lines.append(f"- Between rounds, after a {factor}x step: its relay used {upper_median(used):.0%} of "
                     f"its share (median; at most {max(used):.0%}) in the gap before its next step.")
    core0 = [core(os.path.join(directory, f"paired-{r}.core0"), 3) for r in sorted(rounds)]
    core1 = [core(os.path.join(directory, f"paired-{r}.core1"), 2) for r in sorted(rounds)]
    soft = [c[2] / c[1] / share for c in core0 if c and c[1] > 0]
    busy = [c[0] / c[1] for c in core1 if c and c[1] > 0]
    if soft:
        lines.append(f"- Core 0 in softirq, as a share of one relay's: {min(soft):.1%}-{max(soft):.1%} a round "
                     "(the kernel's work charged to whichever task runs; an upper bound on what one relay's "
                     "load can put on the other's CPU).")
    if busy:
        lines.append(f"- Core 1 (the generators'): {min(busy):.0%}-{max(busy):.0%} busy.")
    checked = labels(directory, rounds)
    if checked:
        lines.append(f"- Each step's tunnels against its relay's own handshake count over the round: "
                     f"{min(checked):.3f}-{max(checked):.3f} ({len(checked)} steps; about 1 when the files name "
                     "the relay that served the step).")
    for factor, paid in sorted(softirq(directory, rounds, share).items()):
        interrupt, own = [x[0] for x in paid], [x[1] for x in paid]
        lines.append(f"- Softirq paid by the relay at {factor}x ({len(paid)} rounds traced), as a share of its "
                     f"share: on the way out of interrupts {upper_median(interrupt):.2%} (median; at most "
                     f"{max(interrupt):.2%}), in its own calls {upper_median(own):.1%}.")
    if left:
        lines.append(f"- Blocks left out (incomplete, or the relays did not swap): those from rounds {listed(left)}.")
    for name in sorted(os.listdir(directory)):
        if re.match(r"^paired-[0-9]+\.dead$", name):
            lines.append(f"- A relay had gone after round {name[7:-5]}: "
                         f"{read_small(os.path.join(directory, name)).strip() or '?'}; the rounds stopped there.")
    for b in broken:
        lines.append(f"- Unreadable: {b}")
    return "\n".join(lines), said


def listed(numbers):
    return ", ".join(str(x) for x in numbers)


def main(argv):
    args, goal = list(argv[1:]), 0.9
    if len(args) >= 2 and args[0] == "--goal":
        try:
            goal = float(args[1])
        except ValueError:
            goal = -1.0
        if not 0 < goal <= 1:
            print(f"overload_paired: --goal must be in (0, 1]: {args[1]!r}", file=sys.stderr)
            return 2
        args = args[2:]
    if len(args) != 1:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        text, _ = report(args[0], goal)
    except (OSError, ValueError) as e:
        print(f"overload_paired: {e}", file=sys.stderr)
        return 1
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
