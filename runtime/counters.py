"""Run-wide counters that nodes publish and stop conditions read."""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any


class Counters:
    """Named numbers shared by one run (a step count, an update count, a windowed score, ...).

    Each way of publishing is also the rule by which a split run merges the counter across its processes:
    ``add`` accumulates (a step count summed over nodes and processes); ``set`` records the latest value and keeps
    the best one as ``best_<name>`` (the latest report wins); ``observe`` adds samples to a window and sets the
    counter to the window's mean (a score over the last N samples of every producer: the samples travel between
    processes, not the means). Every change is passed to the listeners (the stop
    conditions).
    """

    def __init__(self, initial: dict[str, float] | None = None, windows: dict[str, Any] | None = None) -> None:
        self.values: dict[str, float] = dict(initial or {})
        self.windows: dict[str, deque[float]] = {}
        self.load_windows(windows or {})
        self._listeners: list[Callable[[str, float], None]] = []
        self._sample_listeners: list[Callable[[str, list[float], int], None]] = []

    def observe(self, name: str, samples: Iterable[float], window: int) -> None:
        """Add ``samples`` to the window of ``name`` (the last ``window`` samples) and set ``name`` to its mean."""
        samples = [float(sample) for sample in samples]
        if not samples:
            return
        kept = self.windows.get(name)
        if kept is None or kept.maxlen != window:
            kept = self.windows[name] = deque(kept or (), maxlen=window)
        kept.extend(samples)
        for listener in self._sample_listeners:
            listener(name, samples, window)
        self.set(name, sum(kept) / len(kept))

    def listen_samples(self, listener: Callable[[str, list[float], int], None]) -> None:
        """Call ``listener(name, samples, window)`` on every ``observe``."""
        self._sample_listeners.append(listener)

    def windows_state(self) -> dict[str, Any]:
        """The windows as plain data (for checkpoints)."""
        return {name: {"window": kept.maxlen, "samples": list(kept)} for name, kept in self.windows.items()}

    def load_windows(self, state: dict[str, Any]) -> None:
        """Restore ``windows_state``."""
        for name, saved in state.items():
            self.windows[name] = deque((float(x) for x in saved["samples"]), maxlen=int(saved["window"]))

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
