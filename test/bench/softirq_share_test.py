#!/usr/bin/python3
"""Tests of softirq_share.py on `perf script` text written here."""
import io
import os
import sys
import unittest
from contextlib import redirect_stderr, redirect_stdout

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import softirq_share  # noqa: E402

FROM_INTERRUPT = """\
\tffffffff81369dd3 handle_softirqs+0x253 ([kernel.kallsyms])
\tffffffff81369eae __irq_exit_rcu+0x8e ([kernel.kallsyms])
\tffffffff82241a15 sysvec_apic_timer_interrupt+0x65 ([kernel.kallsyms])
"""
FROM_OWN_CALL = """\
\tffffffff81369dd3 handle_softirqs+0x253 ([kernel.kallsyms])
\tffffffff8136a0c1 do_softirq.part.0+0x41 ([kernel.kallsyms])
\tffffffff8136a12f __local_bh_enable_ip+0x5f ([kernel.kallsyms])
\tffffffff81f4a2b5 __dev_queue_xmit+0x2a5 ([kernel.kallsyms])
"""


def event(comm, tid, t, kind, vec, action, frames):
    return f"{comm} {tid:>6} [000] {t:.6f}: irq:softirq_{kind}: vec={vec} [action={action}]\n{frames}\n"


class Tally(unittest.TestCase):
    def test_each_softirq_goes_to_the_task_and_the_path_it_ran_on(self):
        text = (
            # An exit whose entry came before the trace: not counted.
            event("relaypro", 7701, 10.000000, "exit", 3, "NET_RX", FROM_OWN_CALL)
            + event("relaypro", 7701, 10.001000, "entry", 3, "NET_RX", FROM_OWN_CALL)
            + event("relaypro", 7701, 10.001040, "exit", 3, "NET_RX", FROM_OWN_CALL)
            + event("relaypro", 7712, 10.002000, "entry", 1, "TIMER", FROM_INTERRUPT)
            + event("relaypro", 7712, 10.002003, "exit", 1, "TIMER", FROM_INTERRUPT)
            + event("relaypro", 7712, 10.002003, "entry", 3, "NET_RX", FROM_INTERRUPT)
            + event("relaypro", 7712, 10.002010, "exit", 3, "NET_RX", FROM_INTERRUPT)
            + event("ksoftirqd/0", 15, 10.003000, "entry", 9, "RCU", FROM_INTERRUPT)
            + event("ksoftirqd/0", 15, 10.003500, "exit", 9, "RCU", FROM_INTERRUPT)
            + event("swapper", 0, 10.004000, "entry", 7, "SCHED", FROM_INTERRUPT)
            + event("swapper", 0, 10.004100, "exit", 7, "SCHED", FROM_INTERRUPT))
        result = softirq_share.tally(io.StringIO(text))
        self.assertAlmostEqual(result["seconds"], 0.0041, places=9)
        tasks = result["tasks"]
        self.assertAlmostEqual(tasks["7701"]["own"], 40.0, places=3)
        self.assertAlmostEqual(tasks["7701"]["interrupt"], 0.0, places=9)
        self.assertAlmostEqual(tasks["7712"]["interrupt"], 10.0, places=3)
        self.assertAlmostEqual(tasks["7712"]["vectors"]["TIMER"], 3.0, places=3)
        self.assertAlmostEqual(tasks["7712"]["vectors"]["NET_RX"], 7.0, places=3)
        self.assertAlmostEqual(tasks["15"]["thread"], 500.0, places=3)
        self.assertAlmostEqual(tasks["15"]["interrupt"], 0.0, places=9)
        self.assertAlmostEqual(tasks["0"]["interrupt"], 100.0, places=3)

    def test_a_line_of_something_else_is_an_error_naming_it(self):
        text = event("relaypro", 7701, 1.0, "entry", 3, "NET_RX", FROM_OWN_CALL) + "garbage here\n"
        with self.assertRaisesRegex(ValueError, "line 7: neither a softirq event nor a frame"):
            softirq_share.tally(io.StringIO(text))

    def test_the_command_line(self):
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            self.assertEqual(softirq_share.main(["softirq_share.py", "extra"]), 2)
        self.assertIn("usage", err.getvalue())


if __name__ == "__main__":
    unittest.main()
