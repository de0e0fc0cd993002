"""Counters kept in step across processes: each local change goes out as an ``add``, ``set`` or ``observe``.

The way a node publishes a counter is its merge rule (``Counters``): ``add`` accumulates (a count kept by two
workers sums up), ``set`` keeps the latest and a best value, ``observe`` extends a window of samples whose mean
is the counter. A change is sent as ``observe`` of the samples for a windowed counter (every process's window then
holds every process's samples; its mean is not sent), as ``set`` where the counter has a ``best_`` companion, and
as ``add`` of the difference otherwise. Changes applied from elsewhere are not sent back.

Written for Python 3.8 as well.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List


class CounterMirror:
    """Forwards the changes of ``counters`` through ``send(op, name, value)``; ``apply`` takes remote changes.

    Args:
        counters: the process's ``Counters``.
        send: called with ``("add", name, delta)``, ``("set", name, value)`` or
            ``("observe", name, [samples, window])`` for each local change.
    """

    def __init__(self, counters: Any, send: Callable[[str, str, Any], None]) -> None:
        self.counters = counters
        self.send = send
        self._last: Dict[str, float] = dict(counters.values)
        self._applying = False
        counters.listen(self._changed)
        counters.listen_samples(self._observed)

    @property
    def applying(self) -> bool:
        """Whether a change made in another process is being applied (the listeners see it as a remote one)."""
        return self._applying

    def _observed(self, name: str, samples: List[float], window: int) -> None:
        if not self._applying:
            self.send("observe", name, [samples, window])

    def _changed(self, name: str, value: float) -> None:
        previous = self._last.get(name, 0)
        self._last[name] = value
        if self._applying or name in self.counters.windows:
            return
        if f"best_{name}" in self.counters.values:
            self.send("set", name, value)
        else:
            self.send("add", name, value - previous)

    def apply(self, op: str, name: str, value: Any) -> None:
        """Apply a change made in another process (the local listeners, stop conditions included, see it)."""
        self._applying = True
        try:
            if op == "observe":
                samples, window = value
                self.counters.observe(name, samples, int(window))
            elif op == "set":
                self.counters.set(name, value)
            else:
                self.counters.add(name, value)
        finally:
            self._applying = False
