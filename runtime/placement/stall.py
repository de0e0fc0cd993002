"""``StallNote``: a worker's record of a node blocking its event loop, for the main process to read.

A worker whose event loop is blocked (a simulator stuck in a synchronous call) cannot send a frame, answer a stop or
report anything; the main process ends up killing it. So a thread in the worker watches the loop and, once it has
not turned for ``stall_s``, writes what holds it (the node and the line, as ``LoopWatchdog`` finds it) to a file
in the run's slot directory; the main process puts that into the error when it has to kill the worker. A file,
not a frame: the loop's own pipe writer may be half-way through a frame.
"""
from __future__ import annotations

import asyncio
import os
import threading
import time

from ..loop_turns import LoopTurns


def stall_path(directory: str, index: int) -> str:
    """Where the ``index``-th worker notes a stall (an index: a worker's name comes from the graph file)."""
    return os.path.join(directory, f"stall-{index}")


def read_stall(path: str | None) -> tuple[str | None, str] | None:
    """(node id or ``None``, description) a worker noted at ``path``, or ``None`` when it noted nothing."""
    if path is None:
        return None
    try:
        with open(path) as file:
            node_id, _, where = file.read(4096).partition("\n")
    except OSError:
        return None
    return node_id or None, where


class StallNote:
    """Watches the calling thread's event loop from a daemon thread.

    Args:
        loop: the running loop (create the note from its thread).
        path: the file the description is written to (removed when the loop turns again).
        stall_s: how long the loop may not turn before it is noted.
        tick_s: how often the loop is probed.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, path: str, stall_s: float = 5.0, tick_s: float = 0.25) -> None:
        self.path = path
        self.stall_s = stall_s
        self.tick_s = tick_s
        self.turns = LoopTurns(loop)
        self._noted = False
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="dnne-stall-note", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (from the loop's thread)."""
        self._stopped.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        while not self._stopped.wait(self.tick_s):
            if not self.turns.probe():
                return  # the loop is closed
            blocked_s = self.turns.blocked_s(time.monotonic())
            if blocked_s >= self.stall_s and not self._noted:
                self._noted = True
                node_id, where = self.turns.describe()
                partial = self.path + ".partial"
                with open(partial, "w") as file:
                    file.write(f"{node_id or ''}\nits event loop has not turned for {blocked_s:.0f}s: {where}")
                os.replace(partial, self.path)
            elif blocked_s < self.tick_s * 2 and self._noted:
                self._noted = False
                try:
                    os.unlink(self.path)
                except OSError:
                    pass
