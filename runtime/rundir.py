"""The run directory: resolved graph, ``run.json``, metrics (``metrics.jsonl``, TensorBoard events and any other
sinks), checkpoints, ``summary.json``."""
from __future__ import annotations

import importlib.util
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import checkpoint
from .sinks import MetricSink, MetricStamp, RunInfo, make_sink, plain, provenance

if TYPE_CHECKING:
    from .runner import GraphRun

log = logging.getLogger("dnne")


class RunDirectory:
    """A run hook that keeps everything a run leaves behind in one folder.

    Args:
        path: the run directory (created).
        checkpoint_every: save a checkpoint every N iterations (0: only at the end and on request).
        keep: how many checkpoints to keep.
        tensorboard: write TensorBoard event files (when the ``tensorboard`` package is installed).
        sinks: more metric sinks, by name (``csv``, ``wandb``, ``mlflow``) or as ``MetricSink`` objects.
        argv: the command line recorded in ``run.json`` (default: this process's).
    """

    def __init__(self, path: Path, checkpoint_every: int = 0, keep: int = 3, tensorboard: bool = True,
                 sinks: Sequence[str | MetricSink] = (), argv: list[str] | None = None) -> None:
        self.path = path
        self.checkpoint_every = checkpoint_every
        self.keep = keep
        self.tensorboard = tensorboard
        self.run: GraphRun | None = None
        self.sinks = [make_sink(sink) if isinstance(sink, str) else sink for sink in sinks]
        self.argv = argv
        self._open_sinks: list[MetricSink] = []
        self._stamp: MetricStamp | None = None
        self.abort = False
        self._saves = 0
        self._started = time.perf_counter()
        self._wall_offset = 0.0

    @property
    def checkpoints(self) -> Path:
        """Where checkpoints go."""
        return self.path / "checkpoints"

    def on_start(self, run: GraphRun) -> None:
        """Write the resolved graph; open the metrics file and TensorBoard writer; hook into the run."""
        self.run = run
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "graph.json").write_text(json.dumps(run.graph.to_native(), indent=2) + "\n")
        self._wall_offset = float(run.counters.get("wall_time_s", 0.0) or 0.0)
        self._started = time.perf_counter()
        self._stamp = MetricStamp(run.counters, self.wall_time)
        origin = provenance.collect(self.argv)
        (self.path / "run.json").write_text(json.dumps(origin, indent=2) + "\n")
        info = RunInfo(self.path.name, self.path, run.graph.to_native(), origin, run.counters)
        for sink in self._sinks_to_open():
            sink.open(info)
            self._open_sinks.append(sink)
        run.context.metric_sinks.append(self.write_metrics)
        run.context.checkpoint_handler = self.request_checkpoint
        run.counters.listen(self._counter_changed)

    def _sinks_to_open(self) -> list[MetricSink]:
        sinks = [make_sink("jsonl")]
        if self.tensorboard:
            if importlib.util.find_spec("tensorboard") is None:
                log.info("tensorboard is not installed; no TensorBoard events are written")
            else:
                sinks.append(make_sink("tensorboard"))
        return sinks + self.sinks

    def wall_time(self) -> float:
        """Seconds of training, resumed runs included."""
        return self._wall_offset + time.perf_counter() - self._started

    def write_metrics(self, node_id: str, values: dict[str, Any]) -> None:
        """Pass a row stamped with the run's counters and ``wall_time_s`` to every sink."""
        assert self._stamp is not None
        row, step = self._stamp.row(node_id, values)
        for sink in self._open_sinks:
            sink.write(row, step)

    def _counter_changed(self, name: str, value: float) -> None:
        if name == "iterations" and self.checkpoint_every and int(value) % self.checkpoint_every == 0:
            self.request_checkpoint("periodic")

    def request_checkpoint(self, reason: str) -> None:
        """Save a checkpoint of the whole graph now."""
        assert self.run is not None
        if self.run.error is not None or self.abort:
            return  # after a failure or an abort, the last good checkpoint stays the latest
        self.run.counters.values["wall_time_s"] = self.wall_time()
        self._saves += 1
        index = int(self.run.counters.get("iterations", 0) or 0)
        path = checkpoint.save(checkpoint.collect(self.run), self.checkpoints, index, self.keep)
        log.info("checkpoint %s (%s)", path, reason)

    def on_stop(self, run: GraphRun) -> None:
        """Save the final checkpoint (unless a node failed) and write ``summary.json``."""
        try:
            if run.error is None and run.nodes:
                self.request_checkpoint(run.stop_reason or "end")
        finally:
            self.write_summary(run)
            for sink in self._open_sinks:
                sink.close()
            self._open_sinks.clear()

    def write_summary(self, run: GraphRun) -> None:
        """Write ``summary.json`` (atomically)."""
        run.counters.values["wall_time_s"] = self.wall_time()
        summary = run.result().summary()
        summary["wall_time_s"] = round(self.wall_time(), 3)
        summary["run_dir"] = str(self.path)
        partial = self.path / "summary.json.partial"
        partial.write_text(json.dumps(summary, indent=2, default=plain) + "\n")
        partial.replace(self.path / "summary.json")

