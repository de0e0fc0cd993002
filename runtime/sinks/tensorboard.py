"""TensorBoard event files under ``RUN_DIR/tensorboard``, through ``torch.utils.tensorboard``."""
from __future__ import annotations

from typing import Any

from .base import MetricSink, RunInfo, numeric


class TensorBoardSink(MetricSink):
    """Writes every number of a row as a scalar against the row's step: the run's counters under ``counters/``,
    the run's own stamps (wall time, rate) under ``run/``, a node's values under its node id; so the groups are
    what the graph's nodes report."""

    def __init__(self) -> None:
        self._writer: Any = None
        self._summary_type: Any = None
        self._info: RunInfo | None = None

    def open(self, info: RunInfo) -> None:
        """Create the event writer (imports tensorboard here, so runs without this sink never pay for it)."""
        from tensorboard.compat.proto.summary_pb2 import Summary
        from torch.utils.tensorboard import SummaryWriter

        self._info = info
        self._summary_type = Summary
        # purge_step drops the events of steps after the checkpoint, which a resumed run replays
        self._writer = SummaryWriter(str(info.path / "tensorboard"),
                                     purge_step=None if info.resumed_at is None else info.resumed_at + 1)

    def write(self, row: dict[str, Any], step: int) -> None:
        """Add one scalar per finite number of ``row`` (the step counter's is the step), all in one event, where
        ``add_scalar`` writes an event for each: an event, its serialisation and checksum cost about 20 us, and a
        row holds about two dozen numbers."""
        assert self._writer is not None and self._info is not None
        counters = self._info.counters.values if self._info.counters is not None else {}
        step_counter = self._info.step_counter
        node = str(row.get("node", "run"))
        values = []
        for key, value in numeric(row).items():
            if key == step_counter:
                continue
            if key == "wall_time_s" or key == f"{step_counter}_per_s":
                group = "run"
            elif key in counters:
                group = "counters"
            else:
                group = node
            values.append(self._summary_type.Value(tag=f"{group}/{key}", simple_value=value))
        if values:
            self._writer._get_file_writer().add_summary(self._summary_type(value=values), step)

    def close(self) -> None:
        """Flush and close the event file."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
