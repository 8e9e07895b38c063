#!/usr/bin/python3
"""Who paid for one core's softirqs: `perf script` of `perf record -e irq:softirq_entry -e
irq:softirq_exit -g -C N` on stdin, a JSON tally on stdout.

    perf script -i FILE | softirq_share.py

The kernel here has no IRQ time accounting, so a softirq's time is charged to the task that was
running when it ran. It runs either at the end of a task's own system call (`local_bh_enable`
after sending on loopback: the receiving side's processing, in the sender's call: its own
work), or on the way out of an interrupt (`irq_exit`: whatever the softirq does is charged to
whichever task the interrupt found, which may not be the one the work was for), or in
ksoftirqd. The paired overload scenario of run-lifecycle.sh runs two relays on one core; the
softirq time a relay paid on the way out of interrupts bounds what the other relay's load can
have cost it.

Output: {"seconds": span of the trace, "tasks": {"PID": {"comm": ..., "own": µs, "interrupt":
µs, "thread": µs, "vectors": {"NET_RX": µs, ...}}}}. A line that is neither an event header nor
a frame of a callchain is an error naming its line number.
"""
import json
import re
import sys

HEADER = re.compile(r"^(?P<comm>\S.*?)\s+(?P<pid>\d+)\s+\[(?P<cpu>\d+)\]\s+(?P<time>\d+\.\d+):\s+"
                    r"irq:softirq_(?P<kind>entry|exit):\s+vec=(?P<vec>\d+)\s+\[action=(?P<action>\w+)\]\s*$")
FRAME = re.compile(r"^\s+[0-9a-f]+\s+\S+")


def events(lines):
    """(header match, [callchain frames]) for each event, in order."""
    current, frames = None, []
    for number, line in enumerate(lines, 1):
        line = line.rstrip("\n")
        if not line.strip():
            continue
        m = HEADER.match(line)
        if m:
            if current is not None:
                yield current, frames
            current, frames = m, []
        elif FRAME.match(line) and current is not None:
            frames.append(line)
        else:
            raise ValueError(f"line {number}: neither a softirq event nor a frame of one: {line[:120]!r}")
    if current is not None:
        yield current, frames


def path_of(comm, frames):
    """Where a softirq ran: "interrupt", "thread" (ksoftirqd) or "own" (the task's own call)."""
    if comm.startswith("ksoftirqd"):
        return "thread"
    if any("irq_exit" in f for f in frames):
        return "interrupt"
    return "own"


def tally(lines):
    tasks, first, last = {}, None, None
    open_entry = {}  # cpu -> (time, pid, comm, path, action)
    for m, frames in events(lines):
        t, cpu = float(m["time"]), m["cpu"]
        first = t if first is None else first
        last = t
        if m["kind"] == "entry":
            open_entry[cpu] = (t, m["pid"], m["comm"], path_of(m["comm"], frames), m["action"])
            continue
        entry = open_entry.pop(cpu, None)
        if entry is None or entry[4] != m["action"]:
            continue  # an exit whose entry came before the trace began
        t0, pid, comm, path, action = entry
        task = tasks.setdefault(pid, {"comm": comm, "own": 0.0, "interrupt": 0.0, "thread": 0.0, "vectors": {}})
        us = (t - t0) * 1e6
        task[path] += us
        task["vectors"][action] = task["vectors"].get(action, 0.0) + us
    return {"seconds": (last - first) if first is not None else 0.0, "tasks": tasks}


def main(argv):
    if len(argv) != 1:
        print("usage: perf script -i FILE | softirq_share.py", file=sys.stderr)
        return 2
    try:
        result = tally(sys.stdin)
    except ValueError as e:
        print(f"softirq_share: {e}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
