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


def write_run(directory, rounds, factors=("1.5", "4"), share=15, seconds=30.0, used=1.0):
    """rounds: [(goodput at the low factor, at the high one), ...], written as run-lifecycle.sh's
    paired scenario does: relay a low in odd rounds, b low in even ones; each step used `used`
    of the relay's share."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "paired.factors"), "w") as f:
        f.write(" ".join(factors) + "\n")
    with open(os.path.join(directory, "paired.relayCpu"), "w") as f:
        f.write(f"{share}\n")
    for i, goods in enumerate(rounds, 1):
        low_side = "a" if i % 2 else "b"
        for factor, good in zip(factors, goods):
            side = low_side if factor == factors[0] else ("b" if low_side == "a" else "a")
            write_step(directory, factor, i, good, seconds, side, share, used)
        with open(os.path.join(directory, f"paired-{i}.core0"), "w") as f:
            f.write("100 1000 5 400 3000 25\n")  # 2000 ticks, 20 in softirq: 1 %
        with open(os.path.join(directory, f"paired-{i}.core1"), "w") as f:
            f.write("100 1000 1100 3000\n")  # 1000 of 2000 busy: 50 %


def write_step(directory, factor, round_, good, seconds, side, share, used, p99=900000):
    base = os.path.join(directory, f"paired-{factor}-{round_}")
    with open(base + ".json", "w") as f:
        json.dump({"seconds": seconds, "started": round(3 * good * seconds), "succeeded": round(good * seconds),
                   "latencyUs": {"total": {"p99": p99}}}, f)
    with open(base + ".relay", "w") as f:
        f.write(side + "\n")
    t0, cpu = 1000.0, used * share / 100 * seconds * 1e9
    with open(base + ".cpu", "w") as f:
        f.write(f"{t0} 5000 10 1 {t0 + seconds} {5000 + cpu:.0f} 3010 2900\n")


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
        self.assertIn("Core 0 in softirq: at most 1.0% of its time in a round.", text)
        self.assertIn("Core 1 (the generators'): 50%-50% busy.", text)

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
        write_step(self.dir, "4", 3, 380, 30.0, "b", 15, 0.9)
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
