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


def write_run(directory, steps, seconds=20.0, offered=None):
    """steps: {factor: [goodput of round 1, round 2, ...]} written as run-lifecycle.sh does;
    `seconds` a number or {factor: [seconds of each round]}; offered: {factor: rate}, else
    twice the goodput (saturated)."""
    os.makedirs(directory, exist_ok=True)
    for factor, goods in steps.items():
        for i, good in enumerate(goods, 1):
            s = seconds[factor][i - 1] if isinstance(seconds, dict) else seconds
            rate = offered[factor] if offered and factor in offered else 2 * good
            with open(os.path.join(directory, f"overload-0-{factor}-{i}.json"), "w") as f:
                json.dump({"seconds": s, "started": round(rate * s), "succeeded": round(good * s), "failed": 0}, f)
    # Files the pool must leave alone: another bound, the capacity runs, a profiled run, names
    # that are not a factor and a round.
    for name in ("overload-auto-4-1.json", "overload-0-capacity.json", "overload-0-4-profile.json",
                 "overload-0-1.2.3-1.json", "overload-0-4-01.json", "overload-0-4-0.json"):
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

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def test_the_model_takes_out_each_runs_level(self):
        # Two runs, the second 20 % faster throughout, steps of different lengths: 4× serves
        # 90 % of 1.5× in both, so the model says 90 % with no spread, however runs are drawn.
        a, b = self.path("a"), self.path("b")
        write_run(a, {"1.5": [400, 400, 400], "4": [360, 360, 360]},
                  seconds={"1.5": [20, 10, 20], "4": [10, 20, 40]})
        write_run(b, {"1.5": [480, 480], "4": [432, 432]})
        code, out, err = run(["--goal", "0.85", a, b])
        self.assertEqual(code, 0, err)
        self.assertIn("2 runs, 10 steps; saturated factors in every run but: none.", out)
        self.assertIn("4× / 1.5×, the model: 90.0 % (95 % over runs resampled: 90.0 % – 90.0 %; 2 runs)", out)
        self.assertIn("The model's residual spread: 0.0 % a step", out)
        # A typical run: the median of 3 and 2 rounds, 2.5, rounds to even.
        self.assertIn("Simulated: a run of 2 rounds whose factors", out)
        self.assertIn("(the top at 90.0 % of the highest) reads a median of 90.0 % (5th–95th percentile "
                      "90.0 % – 90.0 %), below 85 % in 0 % of runs.", out)

    def test_a_factor_not_saturated_in_a_run_is_left_out_there(self):
        # 1× served all it was offered in one step of run a: it says nothing of the peak there.
        # In run b it refused throughout, and the model finds 4× at 80 % of it.
        a, b = self.path("a"), self.path("b")
        write_run(a, {"1": [300, 250], "1.5": [400, 400], "4": [360, 360]}, offered={"1": 300})
        write_run(b, {"1": [450, 450], "1.5": [400, 400], "4": [360, 360]})
        code, out, err = run([a, b])
        self.assertEqual(code, 0, err)
        self.assertIn("saturated factors in every run but: 1× in a.", out)
        self.assertIn("4× / 1×, the model: 80.0 % (95 % over runs resampled: 80.0 % – 80.0 %; 1 runs)", out)
        self.assertIn("4× / 1×, same-round pairs: 2, median 80.0 % (too few for an interval)", out)
        self.assertEqual(overload_pool.median([4, 1, 3, 2]), 2.5)

    def test_same_round_pairs_meet_their_own_round(self):
        # Run a: 4x/1.5x = 0.8, 0.9, 1.0; run b: 0.95, 0.85, 0.9 (only when each round meets its
        # own round: the 1.5x steps differ). Median 0.9, two of six below 0.86, and six pairs
        # are enough for an interval (the extremes: 96.9 %).
        a, b = self.path("a"), self.path("b")
        write_run(a, {"0.5": [100, 100, 100], "1.5": [400, 360, 440], "4": [320, 324, 440]}, offered={"0.5": 100})
        write_run(b, {"1.5": [400, 420, 380], "4": [380, 357, 342]})
        code, out, err = run(["--goal", "0.86", a, b])
        self.assertEqual(code, 0, err)
        self.assertIn("4× / 1.5×, same-round pairs: 6, median 90.0 % (80.0 % – 100.0 %, a 96.9 % interval if "
                      "independent), 2 below 86 %", out)
        self.assertNotIn("0.5× in b", out)
        self.assertIn("0.5× in a", out)
        self.assertNotIn("4× / 0.5×", out)
        # Each run's own figure: a's top median 324 over its highest median 400; b's 357 / 400.
        self.assertIn("Each run's own figure (median at the top over the highest median): 81 % / 89 %", out)

    def test_a_runs_own_figure_counts_the_top_among_its_medians(self):
        a = self.path("a")
        write_run(a, {"1.5": [300, 300], "4": [330, 330]})
        code, out, err = run([a])
        self.assertEqual(code, 0, err)
        self.assertIn("Each run's own figure (median at the top over the highest median): 100 %; median 100.0 %", out)

    def test_an_export_reads_back_the_same(self):
        a, b, exported = self.path("a"), self.path("b"), self.path("steps.csv")
        write_run(a, {"1": [390, 410], "1.5": [400, 380], "4": [350, 372]}, seconds=20.004)
        write_run(b, {"1.5": [420, 440], "4": [401, 380]})
        code, direct, err = run(["--export", exported, a, b])
        self.assertEqual(code, 0, err)
        code, again, err = run([exported])
        self.assertEqual(code, 0, err)
        self.assertEqual(again, direct)
        with open(exported) as f:
            self.assertEqual(f.readline(), "run,factor,round,seconds,started,succeeded\n")
            self.assertEqual(f.readline(), "a,1,1,20.004,15603,7802\n")

    def test_the_spread_counts_the_means_degrees_of_freedom(self):
        # Two steps at 0.9 and 1.1 of their mean: sum of squares 0.02 over 2 - 1 degrees.
        self.assertAlmostEqual(overload_pool.spread([{"4": {1: 90, 2: 110}}], {"4"}), 0.02 ** 0.5)
        self.assertIsNone(overload_pool.spread([{"4": {1: 90, 2: 110}}], {"1"}))

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
        # The top is one of the medians: a top far above the rest reads 100 %.
        self.assertEqual(overload_pool.simulate([0.5], 0.01, 3, trials=100)[0], 1.0)

    def test_bad_input_is_an_error_with_its_file(self):
        a = self.path("a")
        write_run(a, {"1.5": [400], "4": [300]})
        bad = os.path.join(a, "overload-0-2-1.json")
        for content, expected in (('{"seconds": 20, "started": 9}', "not a step's report (KeyError: 'succeeded')"),
                                  ('[1, 2]', "not a step's report (TypeError"),
                                  ('{"seconds": 20, "started": 9, "succeeded": "x"}', "succeeded is not a number"),
                                  ('{"seconds": 20, "started": 9, "succeeded": Infinity}',
                                   "succeeded is not a finite number >= 0"),
                                  ('{"seconds": 20, "started": 9, "succeeded": NaN}', "succeeded is not a finite number"),
                                  ('{"seconds": 20, "started": 9, "succeeded": -1}', "succeeded is not a finite number >= 0"),
                                  ('{"seconds": Infinity, "started": 9, "succeeded": 3}', "seconds is not a finite"),
                                  ('{"seconds": 20, "started": 2, "succeeded": 3}', "more succeeded (3) than started (2)"),
                                  ('{"seconds": 0, "started": 9, "succeeded": 3}', "no duration"),
                                  ('{"seconds": 2', "not JSON")):
            with open(bad, "w") as f:
                f.write(content)
            code, out, err = run([a])
            self.assertEqual(code, 1, content)
            self.assertIn(f"{bad}: {expected}", err, content)
        os.remove(bad)
        # One step under two spellings of its factor.
        with open(os.path.join(a, "overload-0-4.0-1.json"), "w") as f:
            json.dump({"seconds": 20, "started": 9000, "succeeded": 6000}, f)
        code, out, err = run([a])
        self.assertEqual(code, 1)
        self.assertIn("a second step 4× round 1", err)
        os.remove(os.path.join(a, "overload-0-4.0-1.json"))
        # Not a regular file: refused, not read (a FIFO would hang).
        os.mkfifo(bad)
        code, out, err = run([a])
        self.assertEqual(code, 1)
        self.assertIn(f"{bad}: not a regular file", err)
        os.remove(bad)
        code, out, err = run([a, a + "/"])
        self.assertEqual(code, 1)
        self.assertIn("named twice", err)
        code, out, err = run(["--top", "3", a])
        self.assertEqual(code, 1)
        self.assertIn("no step at 3× in a", err)

    def test_a_bad_export_is_an_error_with_its_line(self):
        exported = self.path("steps.csv")
        for content, expected in (("run,factor\nA,4\n", "the header is not run,factor,round,seconds,started,succeeded"),
                                  ("run,factor,round,seconds,started,succeeded\nA,4,1,20,9\n", ":2: not 6 fields"),
                                  ("run,factor,round,seconds,started,succeeded\nA,4,1,20,9,3,7\n", ":2: not 6 fields"),
                                  ("run,factor,round,seconds,started,succeeded\nA,x,1,20,9,3\n",
                                   ":2: not a factor and a round"),
                                  ("run,factor,round,seconds,started,succeeded\nA,4,1,20,9,3\nA,4,1,20,9,3\n",
                                   ":3: a second step 4× round 1")):
            with open(exported, "w") as f:
                f.write(content)
            code, out, err = run([exported])
            self.assertEqual(code, 1, content)
            self.assertIn(expected, err, content)

    def test_usage(self):
        for args in ([], ["--top"], ["--goal", "x", "d"], ["--goal", "nan", "d"], ["--goal", "90", "d"],
                     ["--top", "0", "d"], ["--bogus", "d"], ["--export"]):
            code, out, err = run(args)
            self.assertEqual(code, 2, args)
            self.assertTrue(err.strip(), args)


if __name__ == "__main__":
    unittest.main()
