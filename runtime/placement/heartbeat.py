"""Worker heartbeats: the runtime's own liveness check of every worker part, a process or a Ray actor.

A worker sends one byte every ``INTERVAL_S`` on a socket of its own (``Beat``, a daemon thread, so a node that
keeps the worker's event loop busy does not silence it; a stopped process (SIGSTOP), a frozen machine or a lost
node does). The main process watches every worker's socket in one thread (``Monitor``): a running worker silent
for ``TIMEOUT_S`` is lost, reported once to ``on_lost(name, silent_s)`` in the run's event loop. Detection takes
at most ``TIMEOUT_S`` plus one check period (``CHECK_S``), under 1 s. Until the worker says it runs
(``Beat.running``, once its nodes are set up) silences of up to ``STARTUP_S`` are allowed: loading node packages
holds the interpreter lock through long native library loads, which would silence the beat thread.

A loaded machine can starve a healthy worker of the CPU for longer than ``TIMEOUT_S`` (a ``nice``d run among busy
processes). Where the operating system can be asked (a worker process on this machine: ``process_state``), a
silent worker whose process is runnable or sleeping is late, not lost: the monitor counts it and waits on. A
stopped (SIGSTOP), dead or unknown process, or a worker on another machine, is lost on silence alone. The end of
the socket (the worker exited, or its process was killed) is not a loss: the worker's frame connection reports how
it ended.
"""
from __future__ import annotations

import asyncio
import selectors
import socket
import threading
import time
from collections.abc import Callable

INTERVAL_S = 0.1
"""How often a worker beats."""
TIMEOUT_S = 0.9
"""Silence after which a worker is lost."""
CHECK_S = 0.05
"""How often the monitor looks at the clocks."""
STARTUP_S = 120.0
"""How long a worker that has not yet said it runs may stay silent."""
RUNNING = b"!"
"""The beat that says the worker has loaded its part: from now on ``TIMEOUT_S`` applies."""


class Beat:
    """The worker's side: a daemon thread that writes one byte every ``interval_s`` to ``sock`` until stopped or
    the socket breaks."""

    def __init__(self, sock: socket.socket, interval_s: float = INTERVAL_S) -> None:
        self.sock = sock
        self.interval_s = interval_s
        self._stopped = threading.Event()
        self._beat_byte = b"."
        self._thread = threading.Thread(target=self._beat, name="dnne-heartbeat", daemon=True)

    def start(self) -> None:
        """Start beating."""
        self._thread.start()

    def running(self) -> None:
        """The worker has loaded its part: beat with ``RUNNING`` from now on (the strict timeout applies)."""
        self._beat_byte = RUNNING

    def stop(self) -> None:
        """Stop beating and close the socket (the main process then sees its end, not a silence)."""
        self._stopped.set()
        self._thread.join(timeout=1.0)
        self.sock.close()

    def _beat(self) -> None:
        while not self._stopped.is_set():
            try:
                self.sock.sendall(self._beat_byte)
            except OSError:
                return
            self._stopped.wait(self.interval_s)


class Monitor:
    """The main process's side: one thread watching every worker's heartbeat socket.

    Args:
        on_lost: called once per lost worker, in the event loop that created the monitor, with the worker's name
            and the seconds since its last beat (or since it was watched, before its first).
        timeout_s: silence after which a running worker is lost (default ``TIMEOUT_S``).
        startup_s: how long a worker may stay silent before it says it runs (default ``STARTUP_S``).
        pid_of: the pid of a worker's process when it runs on this machine (``None``: elsewhere, or unknown).
    """

    def __init__(self, on_lost: Callable[[str, float], None], timeout_s: float | None = None,
                 startup_s: float | None = None, pid_of: Callable[[str], int | None] = lambda name: None) -> None:
        self.on_lost = on_lost
        self.pid_of = pid_of
        self.timeout_s = TIMEOUT_S if timeout_s is None else timeout_s
        self.startup_s = STARTUP_S if startup_s is None else startup_s
        self.lost: dict[str, float] = {}
        self.late: dict[str, int] = {}
        """Per worker, how often it was silent past ``timeout_s`` while its process was still runnable here."""
        self.longest_gap: dict[str, float] = {}
        """Per worker, the longest silence seen while it ran (how close it came to ``timeout_s``)."""
        self.last_beat: dict[str, float] = {}
        """Per worker, when its last beat came (``time.monotonic``), kept after it ended."""
        self._loop = asyncio.get_running_loop()
        self._selector = selectors.DefaultSelector()
        self._last: dict[str, tuple[float, bool]] = {}  # name -> (time of the last beat or of watch(), running)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="dnne-heartbeat-monitor", daemon=True)
        self._thread.start()

    def watch(self, name: str, sock: socket.socket) -> None:
        """Start watching worker ``name``'s end of its heartbeat socket."""
        sock.setblocking(False)
        with self._lock:
            self._last[name] = (time.monotonic(), False)
            self._selector.register(sock, selectors.EVENT_READ, name)

    def silence(self, name: str) -> float | None:
        """Seconds since worker ``name``'s last beat (``None`` before its first): a worker that died within that
        time was found dead at most this long after it last answered."""
        beat = self.last_beat.get(name)
        return None if beat is None else time.monotonic() - beat

    def forget(self, name: str) -> None:
        """Stop watching ``name`` (it ended, or it was lost and is being stopped)."""
        with self._lock:
            self._last.pop(name, None)
            for key in list(self._selector.get_map().values()):
                if key.data == name:
                    self._selector.unregister(key.fileobj)
                    key.fileobj.close()  # type: ignore[union-attr]

    def close(self) -> None:
        """Stop the thread and close every socket."""
        self._closed.set()
        self._thread.join(timeout=1.0)
        with self._lock:
            for key in list(self._selector.get_map().values()):
                self._selector.unregister(key.fileobj)
                key.fileobj.close()  # type: ignore[union-attr]
            self._last.clear()
        self._selector.close()

    def _watch(self) -> None:
        while not self._closed.is_set():
            with self._lock:
                events = self._selector.select(timeout=0) if self._selector.get_map() else []
                now = time.monotonic()
                for key, _ in events:
                    try:
                        data = key.fileobj.recv(4096)  # type: ignore[union-attr]
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        data = b""
                    if data:
                        self.last_beat[key.data] = now
                        if key.data in self._last:  # a lost worker that wakes stays lost
                            since, running = self._last[key.data]
                            if running:
                                gap = max(self.longest_gap.get(key.data, 0.0), now - since)
                                self.longest_gap[key.data] = gap
                            self._last[key.data] = (now, running or RUNNING in data)
                    else:  # the worker's process ended: its frame connection says how
                        self._last.pop(key.data, None)
                        self._selector.unregister(key.fileobj)
                        key.fileobj.close()  # type: ignore[union-attr]
                late = [(name, now - since) for name, (since, running) in self._last.items()
                        if now - since > (self.timeout_s if running else self.startup_s)]
                for name, silent in list(late):
                    pid = self.pid_of(name)
                    if pid is not None and process_state(pid) in ("R", "S", "D"):  # starved, not stopped
                        self.late[name] = self.late.get(name, 0) + 1
                        self._last[name] = (now, self._last[name][1])
                        late.remove((name, silent))
                        continue
                    self._last.pop(name)
                    self.lost[name] = silent
            for name, silent in late:
                try:
                    self._loop.call_soon_threadsafe(self.on_lost, name, silent)
                except RuntimeError:  # the run's loop has closed: nobody to tell
                    return
            self._closed.wait(CHECK_S)


def process_state(pid: int) -> str | None:
    """The state letter of process ``pid`` on this machine (``R`` running, ``S``/``D`` sleeping, ``T`` stopped,
    ``Z`` zombie...), from ``/proc``; ``None`` where it cannot be read (gone, or no ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()
    return fields[0].decode() if fields else None
