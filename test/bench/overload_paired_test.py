#!/usr/bin/python3
"""Tests of overload_paired.py on paired runs written here with known goodputs."""
import io
import json
import math
import os
import sys
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import overload_paired  # noqa: E402


def write_run(directory, rounds, factors=("1.5", "4"), share=15, seconds=30.0, used=1.0, gap=0.05):
    """rounds: [(goodput at the low factor, at the high one), ...], written as run-lifecycle.sh's
    paired scenario does: relay a low in odd rounds, b low in even ones; round r from 1000 + 40 r
    for `seconds`, each step using `used` of its relay's share and each 10 s gap `gap` of it."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "paired.factors"), "w") as f:
        f.write(" ".join(factors) + "\n")
    with open(os.path.join(directory, "paired.relayCpu"), "w") as f:
        f.write(f"{share}\n")
    with open(os.path.join(directory, "paired.capacity"), "w") as f:
        f.write("64 300\n")
    ns = {"a": 0.0, "b": 0.0}  # each relay's CPU so far
    for i, goods in enumerate(rounds, 1):
        low_side = "a" if i % 2 else "b"
        for factor, good in zip(factors, goods):
            side = low_side if factor == factors[0] else ("b" if low_side == "a" else "a")
            before = ns[side]
            ns[side] += used * share / 100 * seconds * 1e9
            write_step(directory, factor, i, good, seconds, side, (1000.0 + 40 * i, before, ns[side]))
            ns[side] += gap * share / 100 * 10 * 1e9
        with open(os.path.join(directory, f"paired-{i}.core0"), "w") as f:
            f.write("100 1000 5 400 3000 25\n")  # 2000 ticks, 20 in softirq: 1 % of the core
        with open(os.path.join(directory, f"paired-{i}.core1"), "w") as f:
            f.write("100 1000 1100 3000\n")  # 1000 of 2000 busy: 50 %


def write_step(directory, factor, round_, good, seconds, side, cpu=None, p99=900000):
    """cpu: (start, relay's ns before, after); default a step that used its whole 15 % share."""
    start, before, after = cpu or (1000.0 + 40 * round_, 0.0, 0.15 * seconds * 1e9)
    base = os.path.join(directory, f"paired-{factor}-{round_}")
    with open(base + ".json", "w") as f:
        json.dump({"seconds": seconds, "started": round(3 * good * seconds), "succeeded": round(good * seconds),
                   "latencyUs": {"total": {"p99": p99}}}, f)
    with open(base + ".relay", "w") as f:
        f.write(side + "\n")
    with open(base + ".cpu", "w") as f:
        f.write(f"{start} {before:.0f} 10 1 {start + seconds} {after:.0f} 3010 2900\n")


def run(args):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = overload_paired.main(args)
    return code, out.getvalue(), err.getvalue()


class Quantiles(unittest.TestCase):
    def test_student_t_against_its_table(self):
        for df, value in ((1, 12.7062), (4, 2.7764), (9, 2.2622), (19, 2.0930), (60, 2.0003)):
            self.assertAlmostEqual(overload_paired.t_quantile(0.975, df), value, places=3)
        self.assertAlmostEqual(overload_paired.t_quantile(0.025, 9), -2.2622, places=3)
        with self.assertRaises(ValueError):
            overload_paired.t_quantile(1.0, 5)
        with self.assertRaises(ValueError):
            overload_paired.t_quantile(0.5, 0)


class Verdict(unittest.TestCase):
    def test_the_interval_decides_against_the_goal(self):
        # Log ratios of 0.95 and 0.93 alternating: a mean near 0.94, a tight interval.
        values = [math.log(0.95), math.log(0.93)] * 5
        estimate, low, high, n, sd, said = overload_paired.verdict(values, 0.9)
        self.assertEqual(n, 10)
        self.assertAlmostEqual(estimate, math.sqrt(0.95 * 0.93), places=9)
        self.assertLess(low, estimate)
        self.assertGreater(high, estimate)
        self.assertGreater(low, 0.9)
        self.assertEqual(said, "shown met")
        # Half-width by hand: t(0.975, 9) * sd / sqrt(10).
        half = 2.2622 * sd / math.sqrt(10)
        self.assertAlmostEqual(math.log(high) - math.log(estimate), half, places=3)
        self.assertEqual(overload_paired.verdict([math.log(0.85), math.log(0.86)] * 4, 0.9)[5], "shown not met")
        self.assertEqual(overload_paired.verdict([math.log(0.80), math.log(1.0)] * 2, 0.9)[5], "not decided")
        self.assertEqual(overload_paired.verdict([math.log(0.95)], 0.9)[5], "not decided: fewer than two blocks")
        # At the goal exactly, the lower end counts as met.
        self.assertEqual(overload_paired.verdict([math.log(0.9)] * 3, 0.9)[5], "shown met")


class VerdictByHand(unittest.TestCase):
    def test_an_interval_worked_out_by_hand(self):
        logs = [math.log(x) for x in (0.90, 0.94, 0.98)]
        mean = sum(logs) / 3
        sd = math.sqrt(sum((v - mean) ** 2 for v in logs) / 2)  # n - 1
        half = 4.3027 * sd / math.sqrt(3)  # t(0.975, 2)
        estimate, low, high, n, got_sd, said = overload_paired.verdict(logs, 0.9)
        self.assertAlmostEqual(got_sd, sd, places=12)
        self.assertAlmostEqual(low, math.exp(mean - half), places=4)
        self.assertAlmostEqual(high, math.exp(mean + half), places=4)
        # By hand: mean -0.0624795, sd 0.0425823, half-width 0.1057804.
        self.assertAlmostEqual(low, 0.8451, places=4)
        self.assertAlmostEqual(high, 1.0443, places=4)
        self.assertEqual(said, "not decided")

    def test_an_estimate_above_the_goal_is_not_enough(self):
        estimate, low, _, _, _, said = overload_paired.verdict([math.log(0.85), 0.0] * 2, 0.9)
        self.assertGreater(estimate, 0.9)
        self.assertLess(low, 0.9)
        self.assertEqual(said, "not decided")


class Run(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.dir = self.tmp.name

    def test_a_block_cancels_what_differs_between_the_relays(self):
        # Relay b serves 10 % more than relay a at either factor; 4× is 92 % of 1.5× on both. The
        # rounds' plain ratios are 0.92 * 1.1 and 0.92 / 1.1; each block's mean of logs is 0.92.
        rounds = []
        for i in range(1, 9):
            a_low = i % 2 == 1  # odd rounds: a at the low factor, b at the high one
            low = 400 * (1.0 if a_low else 1.1)
            high = 0.92 * 400 * (1.1 if a_low else 1.0)
            rounds.append((low, high))
        write_run(self.dir, rounds)
        text, said = overload_paired.report(self.dir)
        self.assertIn("4x / 1.5x: **92.0%** (95 % interval 92.0%-92.0%", text)
        self.assertIn("4 blocks of two rounds", text)
        self.assertEqual(said, "shown met")
        self.assertIn("With relay a at 4x: 83.6% over 4 rounds.", text)  # 0.92 / 1.1
        self.assertIn("With relay b at 4x: 101.2% over 4 rounds.", text)  # 0.92 * 1.1
        self.assertIn("steps below 97% of the relay's share: 0 of 8", text)
        self.assertIn("p99 at most 0.90 s", text)
        self.assertIn("Core 0 in softirq, as a share of one relay's: 6.7%-6.7% a round", text)  # 1 % / 15 %
        self.assertIn("Core 1 (the generators'): 50%-50% busy.", text)
        self.assertIn("Capacity, closed loops on both relays at once: 300/s each (concurrency 64, the best).", text)
        self.assertIn("The 4x offered (median 1214/s) is 2.76 times the 1.5x goodput (median 440/s).", text)
        self.assertIn("Between rounds, after a 1.5x step: its relay used 5% of its share (median; at most 5%)", text)
        self.assertIn("Between rounds, after a 4x step: its relay used 5% of its share", text)

    def test_a_high_factor_serving_less_reads_below_one(self):
        write_run(self.dir, [(400, 320), (400, 320), (400, 330), (400, 330)] * 2)
        text, said = overload_paired.report(self.dir)
        self.assertIn("**81.2%**", text)  # exp(mean(log 0.8, log 0.825))
        self.assertEqual(said, "shown not met")

    def test_incomplete_or_unswapped_blocks_are_left_out_and_said(self):
        write_run(self.dir, [(400, 380), (400, 380), (400, 370), (400, 370), (400, 360), (400, 360)])
        os.remove(os.path.join(self.dir, "paired-4-4.json"))  # block of rounds 3-4 incomplete
        with open(os.path.join(self.dir, "paired-4-6.relay"), "w") as f:
            f.write("b\n")  # round 6's high step now claims relay b, as round 5's: no swap
        text, said = overload_paired.report(self.dir)
        self.assertIn("1 blocks of two rounds", text)
        self.assertIn("those from rounds 3, 5", text)
        self.assertEqual(said, "not decided: fewer than two blocks")

    def test_a_collapse_at_the_high_factor_is_not_met(self):
        # Eight good rounds at 95 %, then relay b serves nothing at 4x in rounds 9 and 11.
        rounds = [(400, 380)] * 8 + [(400, 0), (400, 380), (400, 0), (400, 380)]
        write_run(self.dir, rounds)
        for r in (9, 11):
            with open(os.path.join(self.dir, f"paired-4-{r}.relay")) as f:
                self.assertEqual(f.read().strip(), "b")
        text, said = overload_paired.report(self.dir)
        self.assertEqual(said, "shown not met: the 4x step served nothing in rounds 9, 11")
        self.assertIn("- Goal (4x >= 90% of 1.5x): shown not met: the 4x step served nothing in rounds 9, 11.", text)
        self.assertIn("With relay b at 4x: 95.0% over 4 rounds, and 2 rounds with a step that served nothing.", text)
        self.assertNotIn("Blocks left out", text)

    def test_nothing_served_at_the_low_factor_decides_nothing(self):
        write_run(self.dir, [(400, 380)] * 6 + [(0, 380), (400, 380)])
        _, said = overload_paired.report(self.dir)
        self.assertEqual(said, "not decided: the 1.5x step served nothing in rounds 7")

    def test_an_odd_last_round_and_a_dead_relay_are_said(self):
        write_run(self.dir, [(400, 380), (400, 380), (400, 370), (400, 370), (400, 360)])
        with open(os.path.join(self.dir, "paired-5.dead"), "w") as f:
            f.write("b\n")
        text, said = overload_paired.report(self.dir)
        self.assertIn("2 blocks of two rounds", text)
        self.assertIn("those from rounds 5.", text)
        self.assertIn("A relay had gone after round 5: b; the rounds stopped there.", text)

    def test_a_step_named_twice_is_refused(self):
        write_run(self.dir, [(400, 380)] * 4)
        with open(os.path.join(self.dir, "paired-4-1.json")) as f:
            text = f.read()
        with open(os.path.join(self.dir, "paired-4.0-1.json"), "w") as f:
            f.write(text)
        for ext in ("relay", "cpu"):
            with open(os.path.join(self.dir, f"paired-4-1.{ext}")) as f, \
                    open(os.path.join(self.dir, f"paired-4.0-1.{ext}"), "w") as g:
                g.write(f.read())
        text, _ = overload_paired.report(self.dir)
        self.assertIn("round 1 of factor 4 named twice", text)

    def test_the_softirq_each_relay_paid_is_read_by_its_factor(self):
        write_run(self.dir, [(400, 380)] * 4)
        with open(os.path.join(self.dir, "paired.pids"), "w") as f:
            f.write("a 100 101 102\nb 200 201\n")
        for r in (1, 2):
            # 10 s traced; a 15 % share is 1.5e6 µs of it. Round 1: a low, b high; round 2 swapped.
            tasks = {"101": {"interrupt": 1500.0 * r, "own": 150000.0}, "201": {"interrupt": 3000.0, "own": 300000.0},
                     "0": {"interrupt": 9e9, "own": 0.0}}
            with open(os.path.join(self.dir, f"paired-{r}.softirq.json"), "w") as f:
                json.dump({"seconds": 10.0, "tasks": tasks}, f)
        with open(os.path.join(self.dir, "paired-3.softirq.json"), "w") as f:
            f.write("{broken")
        text, _ = overload_paired.report(self.dir)
        # 1.5x: a in round 1 (1500 µs: 0.10 %), b in round 2 (3000 µs: 0.20 %); 4x: b then a (3000 µs).
        self.assertIn("Softirq paid by the relay at 1.5x (2 rounds traced), as a share of its share: on the way "
                      "out of interrupts 0.20% (median; at most 0.20%), in its own calls 20.0%.", text)
        self.assertIn("Softirq paid by the relay at 4x (2 rounds traced), as a share of its share: on the way "
                      "out of interrupts 0.20% (median; at most 0.20%), in its own calls 20.0%.", text)

    def test_each_steps_label_is_checked_against_its_relays_own_count(self):
        write_run(self.dir, [(400, 380)] * 4)
        counts = {"a": 0, "b": 0}
        for r in range(0, 5):
            if r:
                for factor, good in (("1.5", 400), ("4", 380)):
                    with open(os.path.join(self.dir, f"paired-{factor}-{r}.relay")) as f:
                        counts[f.read().strip()] += good * 30
            for side in "ab":
                with open(os.path.join(self.dir, f"paired-{side}-{r}.metrics"), "w") as f:
                    f.write(f'relaypro_tls_handshakes_total{{kind="full"}} {counts[side] + 7}\n'
                            'relaypro_tls_handshakes_total{kind="resumed"} 3\n'
                            'relaypro_connections_shed_total{at="accept"} 999\n')
        text, _ = overload_paired.report(self.dir)
        self.assertIn("Each step's tunnels against its relay's own handshake count over the round: "
                      "1.000-1.000 (8 steps", text)
        # Round 3's labels swapped: each of its steps now reads the other relay's count.
        for factor in ("1.5", "4"):
            name = os.path.join(self.dir, f"paired-{factor}-3.relay")
            with open(name) as f:
                side = f.read().strip()
            with open(name, "w") as f:
                f.write("b\n" if side == "a" else "a\n")
        text, _ = overload_paired.report(self.dir)
        self.assertIn("0.950-1.053 (8 steps", text)  # 380 / 400 and 400 / 380

    def test_the_blocks_lag_one_autocorrelation(self):
        self.assertAlmostEqual(overload_paired.lag1([1.0, -1.0, 1.0, -1.0]), -0.75)
        self.assertAlmostEqual(overload_paired.lag1([1.0, 1.0, -1.0, -1.0]), 0.25)
        self.assertIsNone(overload_paired.lag1([1.0, 2.0]))
        self.assertIsNone(overload_paired.lag1([3.0, 3.0, 3.0]))

    def test_broken_step_files_are_named(self):
        write_run(self.dir, [(400, 380)] * 6)
        cases = {
            "paired-1.5-1.json": "{not json",
            "paired-4-2.json": json.dumps({"seconds": 30, "started": 10, "succeeded": 20}),
            "paired-1.5-3.json": json.dumps({"seconds": 30, "started": "NaN", "succeeded": 1}),
            "paired-4-4.relay": "c\n",
            "paired-4-5.cpu": "1 2 3\n",
        }
        for name, text in cases.items():
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text)
        with open(os.path.join(self.dir, "paired-2-1.json"), "w") as f:
            f.write("{}")
        text, said = overload_paired.report(self.dir)
        self.assertEqual(said, "not decided: fewer than two blocks")  # only rounds 6 (and no pair) left
        for needle in ("paired-4-2.json: more succeeded (20) than started (10)",
                       "paired-1.5-3.json: started is not a finite number >= 0: 'NaN'",
                       "paired-4-4.relay: neither a nor b: 'c'",
                       "paired-4-5.cpu: not two CPU samples in time order",
                       "paired-2-1.json: factor 2 is not one of 1.5 and 4"):
            self.assertIn(needle, text)
        self.assertIn("paired-1.5-1.json: Expecting property name", text)

    def test_a_step_short_of_its_share_is_counted(self):
        write_run(self.dir, [(400, 380)] * 4)
        write_step(self.dir, "4", 3, 380, 30.0, "b", (1120.0, 0.0, 0.9 * 0.15 * 30e9))
        text, _ = overload_paired.report(self.dir)
        self.assertIn("4x: goodput 380-380/s (median 380), offered 1140-1140/s; steps below 97% of the relay's "
                      "share: 1 of 4", text)

    def test_factors_and_share_are_checked(self):
        write_run(self.dir, [(400, 380)] * 2, factors=("4", "1.5"))
        with self.assertRaisesRegex(ValueError, "the low factor 4 is not below 1.5"):
            overload_paired.report(self.dir)
        with open(os.path.join(self.dir, "paired.factors"), "w") as f:
            f.write("1.5\n")
        with self.assertRaisesRegex(ValueError, "two factors expected"):
            overload_paired.report(self.dir)
        with open(os.path.join(self.dir, "paired.factors"), "w") as f:
            f.write("1.5 4\n")
        with open(os.path.join(self.dir, "paired.relayCpu"), "w") as f:
            f.write("0\n")
        with self.assertRaisesRegex(ValueError, "no share"):
            overload_paired.report(self.dir)

    def test_the_command_line(self):
        write_run(self.dir, [(400, 380), (400, 380), (400, 370), (400, 370)] * 2)
        code, out, err = run(["overload_paired.py", "--goal", "0.97", self.dir])
        self.assertEqual(code, 0, err)
        self.assertIn("Goal (>= 97%): **shown not met**", out)
        self.assertEqual(run(["overload_paired.py", "--goal", "1.5", self.dir])[0], 2)
        self.assertEqual(run(["overload_paired.py", "--goal", "x", self.dir])[0], 2)
        self.assertEqual(run(["overload_paired.py"])[0], 2)
        code, _, err = run(["overload_paired.py", os.path.join(self.dir, "nothing")])
        self.assertEqual(code, 1)
        self.assertIn("nothing", err)
        os.mkfifo(os.path.join(self.dir, "fifo"))
        os.remove(os.path.join(self.dir, "paired.factors"))
        os.rename(os.path.join(self.dir, "fifo"), os.path.join(self.dir, "paired.factors"))
        code, _, err = run(["overload_paired.py", self.dir])
        self.assertEqual(code, 1)
        self.assertIn("not a regular file", err)


if __name__ == "__main__":
    unittest.main()
