"""The run directory: resolved graph, ``run.json``, metrics (``metrics.jsonl``, TensorBoard events and any other
sinks), checkpoints, ``summary.json``."""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import checkpoint
from .sinks import STEP_COUNTER, MetricSink, MetricStamp, RunInfo, make_sink, plain, provenance

if TYPE_CHECKING:
    from .runner import GraphRun

log = logging.getLogger("dnne")


DEFAULT_CHECKPOINT_INTERVAL_S = 600.0
MAX_SUMMARY_BYTES = 1 << 20


class LoopBlockedError(RuntimeError):
    """A node held the event loop in a synchronous call and the run had to be stopped around it."""


class RunDirectory:
    """A run hook that keeps everything a run leaves behind in one folder.

    Checkpoints are taken at consistent points only (when the ``iterations`` counter moves: a trainer has just
    finished an update): every ``checkpoint_every`` iterations, at the first consistent point after each
    ``checkpoint_interval_s`` seconds, on a node's request, and at the end. The state at the last consistent point
    is also kept in memory, so a node failure saves it (``failure`` checkpoint) and a crash loses at most one
    interval. A node's request may ask that the checkpoint also be kept under a name (``checkpoints/best.pt``):
    each one of a name replaces the last, is never pruned, and is recorded in ``summary.json`` (``NAME_checkpoint``:
    its path and the node's record), across resumes too.

    Args:
        path: the run directory (created).
        checkpoint_every: save a checkpoint every N iterations (0: not by count).
        keep: how many checkpoints to keep.
        tensorboard: write TensorBoard event files (when the ``tensorboard`` package is installed).
        checkpoint_interval_s: save at the first consistent point after this many seconds (``None``: not by time).
        settings: the run's command-line settings, written to ``run.json`` (under ``settings``) so a resume uses
            them again.
        sinks: more metric sinks, by name (``csv``, ``wandb``, ``mlflow``) or as ``MetricSink`` objects.
        argv: the command line recorded in ``run.json`` (default: this process's).
    """

    def __init__(self, path: Path, checkpoint_every: int = 0, keep: int = 3, tensorboard: bool = True,
                 checkpoint_interval_s: float | None = DEFAULT_CHECKPOINT_INTERVAL_S,
                 settings: dict[str, Any] | None = None, sinks: Sequence[str | MetricSink] = (),
                 argv: list[str] | None = None) -> None:
        self.path = path
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval_s = checkpoint_interval_s
        self.settings = settings
        self.keep = keep
        self.tensorboard = tensorboard
        self.started = False
        self.last_checkpoint: Path | None = None
        self.checkpoint_error: str | None = None
        self._consistent: dict[str, Any] | None = None
        self._consistent_path: Path | None = None
        self._last_save = time.perf_counter()
        self.run: GraphRun | None = None
        self.sinks = [make_sink(sink) if isinstance(sink, str) else sink for sink in sinks]
        self.argv = argv
        self._open_sinks: list[MetricSink] = []
        self._stamp: MetricStamp | None = None
        self.abort = False
        self._saves = 0
        self._started = time.perf_counter()
        self._wall_offset = 0.0
        self.kept: dict[str, dict[str, Any]] = {}

    @property
    def checkpoints(self) -> Path:
        """Where checkpoints go."""
        return self.path / "checkpoints"

    def on_start(self, run: GraphRun) -> None:
        """Write the resolved graph; open the metrics file and TensorBoard writer; hook into the run.

        Called again when the run goes on after replacing a lost part (``placement/failover.py``): the rows past
        the state it goes on from are dropped, as for a resume, and the wall time runs on."""
        replay = self.started
        self.run = run
        self.started = True
        self.path.mkdir(parents=True, exist_ok=True)
        for partial in checkpoint.remove_partials(self.checkpoints):
            log.info("removed %s, left by a run that was killed while saving", partial)
        _write_atomic(self.path / "graph.json", json.dumps(run.graph.to_native(), indent=2) + "\n")
        self._wall_offset = self.wall_time() if replay else float(run.counters.get("wall_time_s", 0.0) or 0.0)
        self._started = self._last_save = time.perf_counter()
        step_counter = run.registry.vocabulary.step_counter or STEP_COUNTER
        self._stamp = MetricStamp(run.counters, self.wall_time, step_counter)
        resumed_at = int(run.counters.get(step_counter, 0) or 0) if run.restore is not None or replay else None
        if resumed_at is not None:
            drop_replayed_rows(self.path / "metrics.jsonl", resumed_at, step_counter)
            self.kept = kept_records(self.path)
        origin = provenance.collect(self.argv)
        record = origin | {"settings": self.settings or {}}
        _write_atomic(self.path / "run.json", json.dumps(record, indent=2) + "\n")
        info = RunInfo(self.path.name, self.path, run.graph.to_native(), origin, run.counters, step_counter,
                       resumed_at)
        for sink in self._sinks_to_open():
            sink.open(info)
            self._open_sinks.append(sink)
        if self.write_metrics not in run.context.metric_sinks:
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
        if name != "iterations" or self.run is None or self.run.error is not None:
            return
        if self.checkpoint_every and int(value) % self.checkpoint_every == 0:
            self.request_checkpoint("periodic")
        elif self.checkpoint_interval_s and time.perf_counter() - self._last_save >= self.checkpoint_interval_s:
            self.request_checkpoint(f"every {self.checkpoint_interval_s:g}s")
        elif self.run.placement is None:
            # A split graph's state lives in its workers; gathering it at every update would cost a round trip.
            self._consistent, self._consistent_path = checkpoint.copy_state(self._state()), None

    def _state(self) -> dict[str, Any]:
        assert self.run is not None
        self.run.counters.values["wall_time_s"] = self.wall_time()
        return checkpoint.collect(self.run)

    def request_checkpoint(self, reason: str, keep: dict[str, Any] | None = None) -> None:
        """Save a checkpoint of the whole graph now (nodes call this at their consistent points); ``keep``
        (``{"name": ..., "record": {...}}``) also keeps it under that name.

        A checkpoint that cannot be written (disk full) stops the run: going on would lose what it cannot save.
        """
        assert self.run is not None
        if self.run.error is not None or self.abort:
            return  # after a failure or an abort, on_stop saves the last consistent state
        placement = self.run.placement
        if placement is not None and placement.gather(reason, self._state,
                                                      lambda state: self._gathered(state, reason, keep)):
            return  # a split run's processes take their parts at a consistent cut first (placement/snapshots.py)
        state = self._state()
        self._write(state, reason, keep)
        if self.run.placement is None:
            self._consistent, self._consistent_path = checkpoint.copy_state(state), self.last_checkpoint

    def _gathered(self, state: dict[str, Any], reason: str, keep: dict[str, Any] | None) -> None:
        """A split run's mid-run checkpoint, every process's part in it: saved, and kept for a failure."""
        if self.run is None or self.run.error is not None or self.abort:
            return
        self._consistent = checkpoint.copy_state(state)
        self._write(state, reason, keep)
        self._consistent_path = self.last_checkpoint

    def _write(self, state: dict[str, Any], reason: str, keep: dict[str, Any] | None = None) -> None:
        assert self.run is not None
        self._saves += 1
        self._last_save = time.perf_counter()
        index = int(state["counters"].get("iterations", 0) or 0)
        try:
            path = checkpoint.save(state, self.checkpoints, index, self.keep)
            if keep is not None:
                kept = checkpoint.save_named(state, self.checkpoints, keep["name"])
                self.kept[keep["name"]] = {"path": str(kept), **keep["record"]}
                log.info("checkpoint %s (%s)", kept, reason)
        except checkpoint.CheckpointError as error:
            if self.checkpoint_error is None:
                self.checkpoint_error = str(error)
                log.error("%s; stopping the run", error)
                self.run.request_stop("failed")
            return
        self.last_checkpoint = path
        log.info("checkpoint %s (%s)", path, reason)

    def last_consistent_state(self) -> tuple[dict[str, Any], Path | None] | None:
        """A copy of the state at the newest consistent point kept (a split run's: its last complete mid-run
        checkpoint) and the checkpoint that holds it; ``None`` before the first."""
        if self._consistent is None:
            return None
        return checkpoint.copy_state(self._consistent), self._consistent_path

    def on_stop(self, run: GraphRun) -> None:
        """Save the final checkpoint (after a node failure: the state at the last consistent point, if one was
        reached) and write ``summary.json``. A run that never started (a resume refused at restore) writes
        nothing: the records of the run it tried to resume stay as they were."""
        if not self.started:
            return
        try:
            if self.abort or not run.nodes or run.replacing:
                pass  # a replaced part: the run goes on from the state kept (its checkpoint is on disk)
            elif run.error is None:
                self.request_checkpoint(run.stop_reason or "end")
            elif self._consistent is not None:
                self._write(self._consistent, f"the last consistent state before {run.error.node_id!r} failed")
            else:
                log.warning("no checkpoint written: the run failed before its first consistent point")
        finally:
            self.write_summary(run)
            for sink in self._open_sinks:
                sink.close()
            self._open_sinks.clear()

    def save_stuck(self, run: GraphRun, reason: str, node_id: str | None, description: str) -> None:
        """Record a run whose event loop is blocked (called from the loop watchdog's thread while the loop cannot
        run): the state at the last consistent point becomes a checkpoint, and the summary names the node."""
        from .errors import NodeFailure

        if run.stop_reason is None:
            run.stop_reason = reason
        if run.error is None and node_id is not None and node_id in run.nodes:
            cause = LoopBlockedError(f"blocked the event loop ({description}); the run was stopped for {reason}")
            run.error = NodeFailure(node_id, type(run.nodes[node_id]).type_name(), "run", cause)
        if self._consistent is not None:
            self._write(self._consistent, f"the last consistent state before the loop was blocked ({reason})")
        self.write_summary(run)

    def write_summary(self, run: GraphRun) -> None:
        """Write ``summary.json`` (atomically)."""
        run.counters.values["wall_time_s"] = self.wall_time()
        summary = run.result().summary()
        summary["wall_time_s"] = round(self.wall_time(), 3)
        summary["run_dir"] = str(self.path)
        summary["last_checkpoint"] = None if self.last_checkpoint is None else str(self.last_checkpoint)
        summary["checkpoint_error"] = self.checkpoint_error
        for name, record in self.kept.items():
            summary[f"{name}_checkpoint"] = record
        _write_atomic(self.path / "summary.json", json.dumps(summary, indent=2, default=plain) + "\n")


def kept_records(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The kept checkpoints the ``summary.json`` of ``run_dir`` records (``NAME_checkpoint``) whose files are still
    in its ``checkpoints/``, by name, so a resumed run records them again until it keeps a newer one. A summary
    that is too large, unreadable or of another shape gives none."""
    summary = run_dir / "summary.json"
    try:
        if summary.stat().st_size > MAX_SUMMARY_BYTES:
            return {}
        fields = json.loads(summary.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(fields, dict):
        return {}
    kept = {}
    for key, value in fields.items():
        name = key[:-len("_checkpoint")]
        path = run_dir / "checkpoints" / f"{name}.pt"
        if key.endswith("_checkpoint") and isinstance(value, dict) and checkpoint.KEPT_NAME.fullmatch(name) \
                and path.is_file():
            kept[name] = dict(value, path=str(path))
    return kept


def drop_replayed_rows(path: Path, step: int, step_counter: str = STEP_COUNTER) -> int:
    """Remove the rows of ``metrics.jsonl`` written after the checkpoint a resume starts from, at ``step`` of the
    ``step_counter`` column (their steps are replayed, and would otherwise appear twice); returns how many were
    dropped. Unreadable lines are kept."""
    if not path.exists():
        return 0
    kept, dropped = [], 0
    for line in path.read_text(errors="replace").splitlines():
        try:
            steps = json.loads(line).get(step_counter)
        except (ValueError, AttributeError):
            steps = None
        if isinstance(steps, (int, float)) and steps > step:
            dropped += 1
        elif line.strip():
            kept.append(line)
    if dropped:
        _write_atomic(path, "".join(line + "\n" for line in kept))
    return dropped


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` beside ``path``, flush it to disk and rename it over ``path``."""
    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    except OSError:
        partial.unlink(missing_ok=True)
        raise

