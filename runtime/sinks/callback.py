"""A run hook that hands every stamped metrics row to a function of the embedding application."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .base import STEP_COUNTER, MetricStamp

if TYPE_CHECKING:
    from ..runner import GraphRun

MetricsCallback = Callable[[dict[str, Any]], None]


class MetricsHook:
    """Calls ``callback(row)`` for every metrics row a node reports, stamped as ``metrics.jsonl`` rows are (node id,
    the run's counters, ``wall_time_s``, the node's values). It runs on the event loop: keep it short.

    Args:
        callback: the function that receives each row.
    """

    def __init__(self, callback: MetricsCallback) -> None:
        self.callback = callback
        self._stamp: MetricStamp | None = None

    def on_start(self, run: GraphRun) -> None:
        """Start stamping rows and subscribe to the run's metrics."""
        started = time.perf_counter()
        self._stamp = MetricStamp(run.counters, lambda: time.perf_counter() - started,
                                  run.registry.vocabulary.step_counter or STEP_COUNTER)
        run.context.metric_sinks.append(self._deliver)

    def _deliver(self, node_id: str, values: dict[str, Any]) -> None:
        assert self._stamp is not None
        row, _ = self._stamp.row(node_id, values)
        self.callback(row)
