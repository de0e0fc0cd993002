"""A thread that watches the event loop itself: a node stuck in a synchronous call (a simulator that never
returns) stops every coroutine, the deadlock watchdog and the signal handlers with it. This thread notices that
the loop has not turned, says which node holds it, and still honours Ctrl-C, SIGTERM and the run's timeout."""
from __future__ import annotations

import asyncio
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable

from .loop_turns import LoopTurns

log = logging.getLogger("dnne")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class LoopWatchdog:
    """Watches ``loop`` from a daemon thread.

    The thread posts a callback to the loop every ``tick_s``; when none has run for ``stall_s`` the loop is
    blocked, and the node whose code holds it is reported once per stall (found on the main thread's stack). A
    stop signal or the deadline that the blocked loop cannot act on within ``grace_s`` calls ``on_stuck`` from this
    thread (the loop is stuck, so nothing else runs), then ends the process with the code it returns.

    Signals reach the thread through Python's signal wakeup file descriptor: the thread takes the loop's place
    on it and passes every byte on, so the loop's own handlers see each signal as before.

    Args:
        loop: the running loop (create the watchdog from its thread, after its signal handlers are installed).
        on_stuck: ``on_stuck(reason, node_id, description) -> exit code``; reason is ``interrupted`` or
            ``timeout``; node_id is the node holding the loop, if one does.
        stall_s: how long the loop may not turn before it is reported.
        deadline_s: seconds from now after which the run must stop (``--timeout``), or ``None``.
        grace_s: how long a due stop waits for the loop to act on it itself.
        tick_s: how often the loop is probed.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, on_stuck: Callable[[str, str | None, str], int], stall_s: float = 10.0,
                 deadline_s: float | None = None, grace_s: float = 2.0, tick_s: float = 0.25) -> None:
        self.loop = loop
        self.on_stuck = on_stuck
        self.stall_s = stall_s
        self.deadline = None if deadline_s is None else time.monotonic() + deadline_s
        self.grace_s = grace_s
        self.tick_s = tick_s
        self.stalls: list[str] = []
        self.turns = LoopTurns(loop)
        self._stopped = threading.Event()
        self._reader, self._writer = socket.socketpair()
        for end in (self._reader, self._writer):
            end.setblocking(False)
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        self._thread = threading.Thread(target=self._watch, name="dnne-loop-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching and give the signal wakeup descriptor back to the loop (call from the loop's thread)."""
        self._stopped.set()
        self._thread.join(timeout=5)
        signal.set_wakeup_fd(self._previous_fd)
        self._reader.close()
        self._writer.close()

    # ---- the thread ------------------------------------------------------------------------------------------
    def _watch(self) -> None:
        due: tuple[str, float] | None = None
        reported = False
        while not self._stopped.is_set():
            if not self.turns.probe():
                return  # the loop is closed
            readable, _, _ = select.select([self._reader], [], [], self.tick_s)
            now = time.monotonic()
            for signum in self._relay() if readable else ():
                if signum in STOP_SIGNALS and due is None:
                    due = ("interrupted", now)
            if self.deadline is not None and now >= self.deadline and due is None:
                due = ("timeout", self.deadline)
            blocked_s = self.turns.blocked_s(now)
            if blocked_s < self.tick_s * 2:
                reported = False
                if due is not None and self.turns.last_turn > due[1]:
                    due = None  # the loop turned after it: its own handlers took the signal or the deadline
            elif blocked_s >= self.stall_s and not reported:
                reported = True
                message = (f"the event loop has not turned for {blocked_s:.0f}s: {self.turns.describe()[1]}; Ctrl-C, SIGTERM "
                           "and --timeout still stop the run")
                self.stalls.append(message)
                log.warning("%s", message)
            if due is not None and self.turns.last_turn < due[1] and now - due[1] >= self.grace_s:
                code = self.on_stuck(due[0], *self.turns.describe())
                sys.stderr.flush()
                os._exit(code)

    def _relay(self) -> list[int]:
        """Read the signal numbers written since the last read and pass them on to the loop's descriptor."""
        try:
            data = self._reader.recv(4096)
        except (BlockingIOError, OSError):
            return []
        if self._previous_fd >= 0:
            try:
                os.write(self._previous_fd, data)
            except OSError:
                pass
        return list(data)
