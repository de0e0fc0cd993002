"""Progress while a run goes: a bar on a terminal, periodic plain lines otherwise."""
from __future__ import annotations

import asyncio
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from .runner import GraphRun


class Progress:
    """A run hook that shows the step counter against its total, its rate, the registered columns and an ETA.

    The step counter, the run key of its total and the columns are what node packages registered
    (``registry.set_step_counter``, ``add_progress_column``); without them the line shows every counter.

    On a terminal it draws a tqdm bar when tqdm is installed; otherwise (CI, files) it writes one line every
    ``interval_s`` seconds.

    Args:
        stream: where to write.
        interval_s: seconds between plain lines.
        bar: draw a bar (default: when ``stream`` is a terminal and tqdm is installed).
    """

    def __init__(self, stream: TextIO = sys.stderr, interval_s: float = 10.0, bar: bool | None = None) -> None:
        self.stream = stream
        self.interval_s = interval_s
        self.bar = bar if bar is not None else stream.isatty() and _has_tqdm()
        self.run: GraphRun | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._tqdm: Any = None
        self._start = 0.0
        self._steps0 = 0.0

    def on_start(self, run: GraphRun) -> None:
        """Start reporting."""
        self.run = run
        self._start = time.perf_counter()
        self._steps0 = self._steps()
        if self.bar:
            from tqdm import tqdm

            total = self._total()
            self._tqdm = tqdm(total=total, initial=int(self._steps0), unit="step", unit_scale=True,
                              file=self.stream, dynamic_ncols=True)
        self._schedule(0.5 if self.bar else self.interval_s)

    def _steps(self) -> float:
        assert self.run is not None
        counter = self.run.registry.vocabulary.step_counter
        return (self.run.counters.get(counter, 0) or 0) if counter else 0

    def _total(self) -> Any:
        assert self.run is not None
        key = self.run.registry.vocabulary.step_total_key
        return self.run.graph.run.get(key) if key else None

    def _columns(self) -> list[str]:
        assert self.run is not None
        counters = self.run.counters
        vocabulary = self.run.registry.vocabulary
        if vocabulary.step_counter is None and not vocabulary.progress_columns:
            return [f"{name} {_number(value)}" for name, value in counters.values.items()]
        return [f"{label} {_number(counters.get(name))}" for name, label in vocabulary.progress_columns.items()
                if counters.get(name) is not None]

    def _schedule(self, delay: float) -> None:
        self._handle = asyncio.get_running_loop().call_later(delay, self._tick)

    def _tick(self) -> None:
        self.report()
        self._schedule(0.5 if self.bar else self.interval_s)

    def line(self) -> str:
        """One status line."""
        assert self.run is not None
        steps = self._steps()
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        rate = (steps - self._steps0) / elapsed
        total = self._total()
        counter = self.run.registry.vocabulary.step_counter
        parts = []
        if counter:
            parts.append(f"{counter} {int(steps)}" + (f"/{total} ({100 * steps / total:.0f}%)" if total else ""))
            parts.append(f"{rate:,.0f} steps/s")
        parts.extend(self._columns())
        if total and rate > 0:
            parts.append(f"ETA {max(total - steps, 0) / rate:.0f}s")
        return " | ".join(parts)

    def report(self) -> None:
        """Write the current status."""
        if self.run is None:
            return
        if self._tqdm is not None:
            self._tqdm.n = int(self._steps())
            self._tqdm.set_postfix_str(" | ".join(self._columns()), refresh=False)
            self._tqdm.refresh()
        else:
            print(self.line(), file=self.stream, flush=True)

    def on_stop(self, run: GraphRun) -> None:
        """Stop reporting; leave a final line."""
        if self._handle is not None:
            self._handle.cancel()
        if self._tqdm is not None:
            self.report()
            self._tqdm.close()
        else:
            self.report()


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _has_tqdm() -> bool:
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True
