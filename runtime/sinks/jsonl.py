"""``metrics.jsonl``: one JSON object per row, appended (a resumed run continues the file)."""
from __future__ import annotations

import json
from typing import Any, TextIO

from .base import MetricSink, RunInfo


class JsonLinesSink(MetricSink):
    """Appends each row to ``RUN_DIR/metrics.jsonl``, line-buffered so a crash loses at most one row."""

    def __init__(self) -> None:
        self._file: TextIO | None = None

    def open(self, info: RunInfo) -> None:
        """Open (or continue) the file."""
        self._file = open(info.path / "metrics.jsonl", "a", buffering=1)

    def write(self, row: dict[str, Any], step: int) -> None:
        """Append ``row``."""
        assert self._file is not None
        self._file.write(json.dumps(row) + "\n")

    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None
