#!/usr/bin/python3
"""Tests of overload_pool.py on runs written here with known goodputs."""
import io
import json
import os
import sys
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import overload_pool  # noqa: E402


def write_run(directory, steps, seconds=20.0):
    """steps: {factor: [goodput of round 1, round 2, ...]} written as run-lifecycle.sh does."""
    os.makedirs(directory, exist_ok=True)
    for factor, goods in steps.items():
        for i, good in enumerate(goods, 1):
            with open(os.path.join(directory, f"overload-0-{factor}-{i}.json"), "w") as f:
                json.dump({"seconds": seconds, "succeeded": round(good * seconds), "failed": 0}, f)
    # Files the pool must leave alone: another bound, the capacity runs, the floor.
    for name in ("overload-auto-4-1.json", "overload-0-capacity.json", "overload-0-4-profile.json"):
        with open(os.path.join(directory, name), "w") as f:
            f.write("{not json")


def run(args):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = overload_pool.main(args)
    return code, out.getvalue(), err.getvalue()


class Pool(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def test_pairs_rounds_across_runs(self):
        # Run a: 4x/1.5x = 0.8, 0.9, 1.0; run b: 0.95, 0.85, 0.9 (only when each round meets its
        # own round: the 1.5x steps differ). Pooled: median 0.9, two of six
        # below 0.86, and six pairs are enough for an interval (the extremes: 96.9 %).
        a, b = os.path.join(self.tmp.name, "a"), os.path.join(self.tmp.name, "b")
        write_run(a, {"0.5": [100, 100, 100], "1.5": [400, 360, 440], "4": [320, 324, 440], "1": [380, 380, 380]})
        write_run(b, {"1.5": [400, 420, 380], "4": [380, 357, 342]})
        code, out, err = run(["--goal", "0.86", a, b])
        self.assertEqual(code, 0, err)
        self.assertIn("2 runs, 18 steps.", out)
        self.assertIn("4× / 1.5×, paired by round: 6 pairs, median 90.0 % (80.0 % – 100.0 %, 96.9 % interval "
                      "for the median), 2 of them below 86 %", out)
        # Three pairs are too few for a 95 % interval (the extremes cover 75 %).
        self.assertIn("4× / 1×: 3 pairs, too few for a 95 % interval", out)
        self.assertNotIn("0.5×", out)
        # Each run's own figure: a's top median 324 over its highest median 400; b's 357 / 400.
        self.assertIn("Each run's own figure (median at the top over the highest median): 81 % / 89 %", out)

    def test_interval_from_order_statistics(self):
        values = [i / 100 for i in range(80, 100)]  # 20 values
        low, high, cover = overload_pool.median_interval(values)
        # n = 20: the 6th lowest and 6th highest cover the median with 95.9 %; the 7th 88.5 %.
        self.assertEqual((low, high), (0.85, 0.94))
        self.assertAlmostEqual(cover, 0.9586, places=3)
        self.assertIsNone(overload_pool.median_interval([1, 2, 3, 4, 5]))
        low, high, cover = overload_pool.median_interval([1, 2, 3, 4, 5, 6])
        self.assertEqual((low, high), (1, 6))
        self.assertAlmostEqual(cover, 1 - 2 / 64)

    def test_the_highest_median_reads_high_on_a_noisy_machine(self):
        # A flat curve read by three rounds: the top's median over the highest of four medians
        # falls below 1 on average, the more so the noisier the steps; without noise it is 1.
        quiet = overload_pool.simulate([1, 1, 1], 0.0, 3, trials=200)
        noisy = overload_pool.simulate([1, 1, 1], 0.1, 3, trials=2000)
        self.assertEqual(quiet[len(quiet) // 2], 1.0)
        self.assertLess(noisy[len(noisy) // 2], 0.95)
        self.assertGreater(noisy[len(noisy) // 2], 0.80)

    def test_bad_input_is_an_error_with_its_file(self):
        a = os.path.join(self.tmp.name, "a")
        write_run(a, {"1.5": [400], "4": [300]})
        bad = os.path.join(a, "overload-0-2-1.json")
        for content, expected in (('{"seconds": 20}', "not a step's report (KeyError: 'succeeded')"),
                                  ('[1, 2]', "not a step's report (TypeError"),
                                  ('{"seconds": 20, "succeeded": "x"}', "not a step's report (ValueError"),
                                  ('{"seconds": 0, "succeeded": 3}', "no duration"),
                                  ('{"seconds": NaN, "succeeded": 3}', "no duration")):
            with open(bad, "w") as f:
                f.write(content)
            code, out, err = run([a])
            self.assertEqual(code, 1, content)
            self.assertIn(f"{bad}: {expected}", err, content)
        os.remove(bad)
        code, out, err = run(["--top", "3", a])
        self.assertEqual(code, 1)
        self.assertIn("no step at 3×", err)

    def test_usage(self):
        for args in ([], ["--top"], ["--goal", "x", "d"], ["--goal", "nan", "d"], ["--top", "0", "d"], ["--bogus", "d"]):
            code, out, err = run(args)
            self.assertEqual(code, 2, args)
            self.assertTrue(err.strip(), args)


if __name__ == "__main__":
    unittest.main()
