"""Run-wide counters that nodes publish and stop conditions read."""
from __future__ import annotations

from collections.abc import Callable


class Counters:
    """Named numbers shared by one run (``env_steps``, ``iterations``, ``mean_return``, ...).

    ``add`` accumulates (``env_steps`` summed over envs and env groups); ``set`` records the latest value and
    keeps the best one as ``best_<name>``. Every change is passed to the listeners (the stop conditions).
    """

    def __init__(self, initial: dict[str, float] | None = None) -> None:
        self.values: dict[str, float] = dict(initial or {})
        self._listeners: list[Callable[[str, float], None]] = []

    def listen(self, listener: Callable[[str, float], None]) -> None:
        """Call ``listener(name, value)`` on every change."""
        self._listeners.append(listener)

    def add(self, name: str, amount: float = 1) -> None:
        """Add ``amount`` to counter ``name``."""
        value = self.values.get(name, 0) + amount
        self.values[name] = value
        self._changed(name, value)

    def set(self, name: str, value: float) -> None:
        """Set counter ``name`` and track its best (largest) value."""
        self.values[name] = value
        best = f"best_{name}"
        if best not in self.values or value > self.values[best]:
            self.values[best] = value
        self._changed(name, value)

    def get(self, name: str, default: float | None = None) -> float | None:
        """The current value of ``name``."""
        return self.values.get(name, default)

    def _changed(self, name: str, value: float) -> None:
        for listener in self._listeners:
            listener(name, value)
