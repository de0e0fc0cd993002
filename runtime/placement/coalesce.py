"""``Coalescer``: the frames one process writes to another in one event-loop turn leave in one write.

Frames come in bursts: a step's outputs cross on three links at once, their credits come back together, and a
counter change goes out with them. Written one by one, each frame costs a system call here and, worse, a wake-up of
the other process (its event loop reads and dispatches one frame, sleeps, and is woken for the next). Buffered until
the end of the loop turn, a burst leaves in one write and is read in one wake-up. Frames keep their order; nothing
waits longer than the current turn.

Written for Python 3.8 as well (no imports from the runtime).
"""
from __future__ import annotations

import asyncio
from typing import Callable, List


class Coalescer:
    """Buffers frames for ``write`` and writes them together once the current event-loop turn is over.

    Call ``flush`` before ending the stream (``write_eof``, ``close``): what is buffered goes out first. Outside a
    running event loop a frame is written at once.

    Args:
        write: writes bytes to the other process (a transport's ``write``); never blocks.
    """

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write
        self._pending: List[bytes] = []

    def __call__(self, data: bytes) -> None:
        """Send ``data`` (one or more whole frames) after the frames written before it."""
        if not self._pending:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no event loop: nothing would flush later
                self._write(data)
                return
        self._pending.append(data)

    def flush(self) -> None:
        """Write what is buffered now, in one write."""
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._write(data)
