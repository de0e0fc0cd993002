"""Nodes awaiting forever: a node suspended on something other than a channel (a future nobody completes, a
lost reply) while nothing else moves. The deadlock watchdog cannot see it (such a node is not blocked on a
channel), so this check looks for a graph where nothing has moved for a grace period."""
from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from types import FrameType
from typing import Any

from .firing import fire_fused


class HangWatch:
    """Reports nodes that await something other than a channel while the whole graph stands still.

    Every ``grace_s / 4`` seconds it compares the run's progress (messages through every channel, the counters) with
    the last check. When nothing has moved for ``grace_s``, no worker thread is running a node's work, and some live
    node is suspended outside a channel, ``on_hang`` gets that node and a description of where each such node waits.
    A node blocking the event loop is the loop watchdog's case: this check runs on the loop.

    Args:
        tasks: each live node's task, by node id.
        progress: returns a value that changes whenever the graph moves.
        blocked: returns the ids of the nodes blocked on a channel.
        grace_s: how long nothing may move.
        on_hang: ``on_hang(node_id, message)``.
    """

    def __init__(self, tasks: Mapping[str, asyncio.Task[Any]], progress: Callable[[], Any],
                 blocked: Callable[[], set[str]], grace_s: float, on_hang: Callable[[str, str], None]) -> None:
        self.tasks = tasks
        self.progress = progress
        self.blocked = blocked
        self.grace_s = grace_s
        self.on_hang = on_hang
        self._last = progress()
        self._since = time.perf_counter()
        self._handle = asyncio.get_running_loop().call_later(grace_s / 4, self._check)

    def stop(self) -> None:
        """Stop checking."""
        self._handle.cancel()

    def _check(self) -> None:
        now = time.perf_counter()
        current = self.progress()
        if current != self._last or _worker_thread_busy():
            self._last, self._since = current, now
        elif now - self._since >= self.grace_s:
            waiting = {node_id: task for node_id, task in self.tasks.items()
                       if not task.done() and node_id not in self.blocked()}
            if waiting:
                # a node fired in its producer's task (firing.fire_fused) is the one that awaits there
                culprits = {_fired_node(task) or node_id: task for node_id, task in waiting.items()}
                places = "; ".join(f"{node_id} awaits {_await_place(task)}"
                                   for node_id, task in sorted(culprits.items()))
                self.on_hang(sorted(culprits)[0], f"nothing has moved for {now - self._since:.0f}s and no channel "
                             f"holds these nodes: {places}")
                return
        self._handle = asyncio.get_running_loop().call_later(self.grace_s / 4, self._check)


def _await_frames(task: asyncio.Task[Any]) -> Iterator[FrameType]:
    """The coroutine frames of a suspended task's await chain, outermost first."""
    awaiting: Any = task.get_coro()
    while awaiting is not None and getattr(awaiting, "cr_frame", None) is not None:
        yield awaiting.cr_frame
        awaiting = awaiting.cr_await


def _await_place(task: asyncio.Task[Any]) -> str:
    """Where a suspended task waits: the innermost coroutine frame of its await chain."""
    frame = None
    for frame in _await_frames(task):
        pass
    if frame is None:
        return "an unknown awaitable"
    return f"in {frame.f_code.co_name} at {frame.f_code.co_filename}:{frame.f_lineno}"


def _fired_node(task: asyncio.Task[Any]) -> str | None:
    """The id of the innermost node a producer fires in ``task`` (``firing.fire_fused``), ``None`` when none."""
    fired = None
    for frame in _await_frames(task):
        if frame.f_code is fire_fused.__code__:
            fired = frame.f_locals["node"].id
    return fired


def _worker_thread_busy() -> bool:
    """Whether a thread pool worker (``asyncio.to_thread``, ``run_in_executor``) is running work now: a node
    awaiting its own thread is busy, not hung."""
    frames = sys._current_frames()
    for thread in threading.enumerate():
        frame = frames.get(thread.ident) if thread.ident is not None else None
        while frame is not None:
            if frame.f_code.co_name == "run" and frame.f_code.co_filename.endswith(("concurrent/futures/thread.py",
                                                                                   "concurrent\\futures\\thread.py")):
                return True
            frame = frame.f_back
    return False
