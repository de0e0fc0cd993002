"""A worker's CPU priority: the ``nice`` option of a ``workers`` entry.

Env-group parts that share cores with the process serving their actions run best a few niceness levels below it
(Sample Factory starts its rollout workers at niceness +10 for the same reason): when the serving process becomes
runnable it takes a core at once, so the parts wait less for their actions. Raising one's own niceness needs no
privilege, so a graph file may ask for it; lowering it is never done.
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
