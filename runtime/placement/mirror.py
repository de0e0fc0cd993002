"""Counters kept in step across processes: each local change goes out as an ``add`` or ``set`` operation.

``Counters.add`` accumulates (``env_steps`` of two env workers sum up) and ``Counters.set`` keeps a best value;
a change is sent as ``set`` where the counter has a ``best_`` companion (it was set) and as ``add`` of the
difference otherwise. Changes applied from elsewhere are not sent back.

Written for Python 3.8 as well.
"""
from __future__ import annotations

from typing import Any, Callable, Dict


class CounterMirror:
    """Forwards the changes of ``counters`` through ``send(op, name, value)``; ``apply`` takes remote changes.

    Args:
        counters: the process's ``Counters``.
        send: called with ``("add", name, delta)`` or ``("set", name, value)`` for each local change.
    """

    def __init__(self, counters: Any, send: Callable[[str, str, float], None]) -> None:
        self.counters = counters
        self.send = send
        self._last: Dict[str, float] = dict(counters.values)
        self._applying = False
        counters.listen(self._changed)

    def _changed(self, name: str, value: float) -> None:
        previous = self._last.get(name, 0)
        self._last[name] = value
        if self._applying:
            return
        if f"best_{name}" in self.counters.values:
            self.send("set", name, value)
        else:
            self.send("add", name, value - previous)

    def apply(self, op: str, name: str, value: float) -> None:
        """Apply a change made in another process (the local listeners, stop conditions included, see it)."""
        self._applying = True
        try:
            if op == "set":
                self.counters.set(name, value)
            else:
                self.counters.add(name, value)
        finally:
            self._applying = False
