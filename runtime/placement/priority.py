"""A worker's CPU priority: the ``nice`` option of a ``workers`` entry.

Sample Factory starts its rollout workers at niceness +10 so that the process serving their actions takes a core
the moment it can run, and the workers wait less for their actions; the option lets a graph do the same with its
env-group parts (on the 2-core machine of ``benchmarks/README.md``, "Ray placement", 0 and 10 measured alike: two
parts and the main process fill both cores either way). Raising one's own niceness needs no privilege, so a graph
file may ask for it; lowering it is never done.
"""
from __future__ import annotations

import os
import sys

MAX_NICE = 19
"""The largest niceness on Linux and macOS (the lowest priority)."""


def lower_priority(increment: int) -> int:
    """Raise this process's niceness by ``increment`` (capped at ``MAX_NICE``), every thread of it on Linux, which
    keeps a niceness per thread; the niceness it then runs at."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    target = min(current + max(increment, 0), MAX_NICE)
    threads = [int(tid) for tid in os.listdir("/proc/self/task")] if sys.platform == "linux" else [0]
    for tid in threads:
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < target:  # a thread already lower stays where it is
                os.setpriority(os.PRIO_PROCESS, tid, target)
        except ProcessLookupError:  # a thread that ended meanwhile
            continue
    return os.getpriority(os.PRIO_PROCESS, 0)
