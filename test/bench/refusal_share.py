#!/usr/bin/python3
"""Where a profiled overload step's relay CPU went (run-lifecycle.sh, PROFILE=1): reads
`perf script -F comm,pid,ip,sym` (call chains) on stdin and prints one JSON object of sample
counts: all; accept4 (every connection taken from the kernel's queue, admitted or refused);
reset (sending a reset, `tcp_send_active_reset`, wherever the close runs it: a connection
refused at accept or shed after its wait, as the relay resets nothing else before a handshake,
and on loopback the client's side of it, processed in the relay's context); the rest of the
syscalls; user space. Linux function names: what a kernel calls them decides the split.

    perf script -i overload-0-profile-4.data -F comm,pid,ip,sym | refusal_share.py
"""
import json
import sys


def stacks(lines):
    """Each sample's frames (function names), innermost first."""
    frames = None
    for line in lines:
        if not line.strip():
            continue
        if not line[0].isspace():  # "comm pid": a sample starts
            if frames is not None:
                yield frames
            frames = []
        elif frames is not None:
            parts = line.split(None, 1)
            frames.append(parts[1].strip() if len(parts) > 1 else "?")
    if frames is not None:
        yield frames


def kind(frames):
    if "tcp_send_active_reset" in frames:
        return "reset"
    if "__sys_accept4" in frames or "__x64_sys_accept4" in frames:
        return "accept4"
    if "entry_SYSCALL_64_after_hwframe" in frames:
        return "otherSyscalls"
    return "rest"


def main():
    counts = {"samples": 0, "accept4": 0, "reset": 0, "otherSyscalls": 0, "rest": 0}
    for frames in stacks(sys.stdin):
        counts["samples"] += 1
        counts[kind(frames)] += 1
    json.dump(counts, sys.stdout)
    print()


if __name__ == "__main__":
    main()
