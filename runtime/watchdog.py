"""Deadlock detection: every live node blocked on a channel, with nothing moving, for a grace period."""
from __future__ import annotations

import asyncio
from collections.abc import Callable

from .channel import Activity


class Watchdog:
    """Tracks which nodes are blocked; reports when all live nodes stay blocked for ``grace_s`` seconds.

    Event-driven: a node blocking is what arms the check, nothing polls. A node waiting on its own worker thread
    or sleeping is not blocked on a channel, so it keeps the graph alive.

    Args:
        grace_s: how long an all-blocked state must last before it is reported.
        on_deadlock: called with a description of the waiting nodes and channels.
        on_moving: called when a node wakes after a report (a worker process tells its main process).
    """

    def __init__(self, grace_s: float, on_deadlock: Callable[[str], None],
                 on_moving: Callable[[], None] | None = None) -> None:
        self.grace_s = grace_s
        self.on_deadlock = on_deadlock
        self.on_moving = on_moving
        self._reported = False
        self.live: set[str] = set()
        self.blocked_nodes: dict[str, Activity] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._wakes = 0

    def add(self, node_id: str) -> None:
        """A node started."""
        self.live.add(node_id)

    def finished(self, node_id: str) -> None:
        """A node ended; the rest may now be all blocked."""
        self.live.discard(node_id)
        self.blocked_nodes.pop(node_id, None)
        self._check()

    def blocked(self, activity: Activity) -> None:
        """``activity``'s node waits on a channel."""
        self.blocked_nodes[activity.node_id] = activity
        self._check()

    def unblocked(self, activity: Activity) -> None:
        """``activity``'s node can run again."""
        self.blocked_nodes.pop(activity.node_id, None)
        self._wakes += 1
        if self._reported:
            self._reported = False
            if self.on_moving is not None:
                self.on_moving()

    def stop(self) -> None:
        """Disarm."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.live.clear()

    def _check(self) -> None:
        if self.live and len(self.blocked_nodes) >= len(self.live) and self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.grace_s, self._confirm, self._wakes)

    def _confirm(self, wakes: int) -> None:
        self._timer = None
        if not self.live or len(self.blocked_nodes) < len(self.live):
            return
        if wakes != self._wakes:
            self._check()
            return
        waits = "; ".join(
            f"{node_id} waits on {a.waiting_on()}" for node_id, a in sorted(self.blocked_nodes.items())
        )
        self._reported = True
        self.on_deadlock(f"deadlock: every node is blocked on a channel for {self.grace_s:g}s ({waits})")
