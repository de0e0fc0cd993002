"""``LoopTurns``: how long ago an event loop last turned, measured from another thread, and which node holds it.

The loop cannot say it is blocked (it is blocked), so a watching thread posts a callback to it and reads when that
callback last ran. ``LoopWatchdog`` (the main process) and ``StallNote`` (a worker) both watch this way.
"""
from __future__ import annotations

import asyncio
import sys
import threading
import time


class LoopTurns:
    """Tracks the turns of ``loop`` for a thread that watches it.

    Args:
        loop: the running loop (create the tracker from its thread: that thread is the one ``describe`` reads).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.last_turn = time.monotonic()
        self._posted = False
        self._main = threading.get_ident()

    def probe(self) -> bool:
        """Post a turn marker to the loop unless one is still pending (call from the watching thread).

        Returns:
            ``False`` when the loop is closed (nothing more to watch).
        """
        if not self._posted:
            self._posted = True
            try:
                self.loop.call_soon_threadsafe(self._turn)
            except RuntimeError:
                return False
        return True

    def blocked_s(self, now: float) -> float:
        """Seconds since the loop last ran a posted marker."""
        return now - self.last_turn

    def describe(self) -> tuple[str | None, str]:
        """The node whose code the loop's thread is running (``None`` when none is), and a description with the
        place."""
        frame = sys._current_frames().get(self._main)
        if frame is None:
            return None, "the main thread has ended"
        where = f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
        from .node import Node

        while frame is not None:
            owner = frame.f_locals.get("self")
            if isinstance(owner, Node):
                return owner.id, (f"node {owner.id!r} ({type(owner).type_name()}) is in {frame.f_code.co_name}, "
                                  f"now at {where}")
            frame = frame.f_back
        return None, f"code outside any node is running, now at {where}"

    def _turn(self) -> None:
        self.last_turn = time.monotonic()
        self._posted = False
