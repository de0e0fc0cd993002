"""The metrics logger interface: one row at a time, stamped by the run, to any number of sinks."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..counters import Counters

STEP_COUNTER = "steps"  # the x axis when no node package registered one (registry.set_step_counter)


@dataclass
class RunInfo:
    """What a sink may record about the run beside its metrics.

    Args:
        name: the run's name (the run directory's name).
        path: the run directory.
        config: the resolved graph (native format).
        provenance: command line, package versions, git revision (``provenance.collect``).
        counters: the run's counters (a sink may group a row's columns by whether they are counters).
        step_counter: the counter that is the rows' x axis.
        resumed_at: the step a resumed run restarts from (``None`` for a new run): rows after it are replayed.
    """

    name: str
    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    counters: Counters | None = None
    step_counter: str = STEP_COUNTER
    resumed_at: int | None = None


class MetricSink(ABC):
    """A destination for metric rows (a file, TensorBoard, an experiment tracker)."""

    @abstractmethod
    def open(self, info: RunInfo) -> None:
        """Start recording for the run described by ``info``."""

    @abstractmethod
    def write(self, row: dict[str, Any], step: int) -> None:
        """Record one row; ``step`` is the row's position on the run's x axis."""

    @abstractmethod
    def close(self) -> None:
        """Flush and release everything (called once, also after failures)."""


def numeric(row: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a row (what scalar trackers accept), without the node id."""
    return {key: float(value) for key, value in row.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
            and abs(value) != float("inf")}


class MetricStamp:
    """Turns a node's metrics into a row stamped with the run's counters and wall time.

    The columns are whatever the nodes publish: every counter of the run (except the ``best_`` records the
    counters keep for themselves) and the node's own values. The row's step is the ``step_counter``.

    Args:
        counters: the run's counters.
        wall_time: seconds of training so far (a resumed run's included).
        step_counter: the counter used as the x axis and for the ``<name>_per_s`` rate column.
    """

    def __init__(self, counters: Counters, wall_time: Callable[[], float], step_counter: str = STEP_COUNTER) -> None:
        self.counters = counters
        self.wall_time = wall_time
        self.step_counter = step_counter
        self._last = (int(counters.get(step_counter, 0) or 0), wall_time())

    def row(self, node_id: str, values: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """The stamped row for ``values`` reported by ``node_id``, and its step."""
        wall = self.wall_time()
        step = int(self.counters.get(self.step_counter, 0) or 0)
        row: dict[str, Any] = {"node": node_id, self.step_counter: step, "wall_time_s": round(wall, 4)}
        if wall > self._last[1]:
            row[f"{self.step_counter}_per_s"] = round((step - self._last[0]) / (wall - self._last[1]), 1)
        self._last = (step, wall)
        for name, value in self.counters.values.items():
            if name not in row and not name.startswith("best_"):
                row[name] = value
        row.update({key: plain(value) for key, value in values.items()})
        return row, step


def plain(value: Any) -> Any:
    """A JSON-ready form of a metric value (one-element tensors become numbers)."""
    if hasattr(value, "item") and getattr(value, "numel", lambda: 0)() == 1:
        return value.item()
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return str(value)
