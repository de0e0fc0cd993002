"""The run directory: resolved graph, ``metrics.jsonl``, TensorBoard events, checkpoints, ``summary.json``."""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from . import checkpoint

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
    """

    def __init__(self, path: Path, checkpoint_every: int = 0, keep: int = 3, tensorboard: bool = True) -> None:
        self.path = path
        self.checkpoint_every = checkpoint_every
        self.keep = keep
        self.tensorboard = tensorboard
        self.run: GraphRun | None = None
        self._metrics: TextIO | None = None
        self._writer: Any = None
        self.abort = False
        self._last_row = (0, 0.0)
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
        self._last_row = (int(run.counters.get("env_steps", 0) or 0), self._wall_offset)
        self._metrics = open(self.path / "metrics.jsonl", "a", buffering=1)
        if self.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.info("tensorboard is not installed; no TensorBoard events are written")
            else:
                self._writer = SummaryWriter(str(self.path / "tensorboard"))
        run.context.metric_sinks.append(self.write_metrics)
        run.context.checkpoint_handler = self.request_checkpoint
        run.counters.listen(self._counter_changed)

    def wall_time(self) -> float:
        """Seconds of training, resumed runs included."""
        return self._wall_offset + time.perf_counter() - self._started

    def write_metrics(self, node_id: str, values: dict[str, Any]) -> None:
        """Append a row stamped with ``env_steps`` and ``wall_time_s`` (and the episode statistics)."""
        assert self.run is not None and self._metrics is not None
        counters = self.run.counters.values
        wall = self.wall_time()
        steps = int(counters.get("env_steps", 0))
        row: dict[str, Any] = {"node": node_id, "env_steps": steps, "wall_time_s": round(wall, 4)}
        if wall > self._last_row[1]:
            row["env_steps_per_s"] = round((steps - self._last_row[0]) / (wall - self._last_row[1]), 1)
        self._last_row = (steps, wall)
        for name in ("iterations", "episodes", "mean_return", "mean_length"):
            if name in counters:
                row[name] = counters[name]
        row.update({k: _plain(v) for k, v in values.items()})
        self._metrics.write(json.dumps(row) + "\n")
        if self._writer is not None:
            step = row["env_steps"]
            for key, value in row.items():
                if key not in ("node", "env_steps") and isinstance(value, (int, float)) and math.isfinite(value):
                    group = "episode" if key in ("mean_return", "mean_length", "episodes") else node_id
                    self._writer.add_scalar(f"{group}/{key}", value, step)

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
            if self._metrics is not None:
                self._metrics.close()
            if self._writer is not None:
                self._writer.close()

    def write_summary(self, run: GraphRun) -> None:
        """Write ``summary.json`` (atomically)."""
        run.counters.values["wall_time_s"] = self.wall_time()
        summary = run.result().summary()
        summary["wall_time_s"] = round(self.wall_time(), 3)
        summary["run_dir"] = str(self.path)
        partial = self.path / "summary.json.partial"
        partial.write_text(json.dumps(summary, indent=2, default=_plain) + "\n")
        partial.replace(self.path / "summary.json")


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and getattr(value, "numel", lambda: 0)() == 1:
        return value.item()
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)
