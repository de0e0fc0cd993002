"""``metrics.csv``: one table for spreadsheets and pandas; columns grow as nodes report new values."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, TextIO

from .base import MetricSink, RunInfo


class CsvSink(MetricSink):
    """Writes rows to ``RUN_DIR/metrics.csv`` under the union of every column seen so far.

    Rows of different nodes carry different columns, and counters appear as the run goes (a windowed mean only
    once its window has a value); a row with a new column rewrites the file once under the wider header, so the file is
    always one valid table. A resumed run continues the existing file.
    """

    def __init__(self) -> None:
        self._path: Path | None = None
        self._file: TextIO | None = None
        self._columns: list[str] = []
        self._writer: Any = None

    def open(self, info: RunInfo) -> None:
        """Open (or continue) the file."""
        self._path = info.path / "metrics.csv"
        if self._path.exists():
            with open(self._path, newline="") as existing:
                self._columns = next(csv.reader(existing), [])
        self._reopen(append=True)

    def _reopen(self, append: bool) -> None:
        assert self._path is not None
        self._file = open(self._path, "a" if append else "w", newline="", buffering=1)
        self._writer = csv.DictWriter(self._file, self._columns, restval="")
        if not append or self._file.tell() == 0:
            self._writer.writeheader()

    def write(self, row: dict[str, Any], step: int) -> None:
        """Append ``row``, widening the table first when it brings new columns."""
        assert self._file is not None and self._path is not None
        new = [key for key in row if key not in self._columns]
        if new:
            self._file.close()
            with open(self._path, newline="") as existing:
                rows = list(csv.DictReader(existing))
            self._columns += new
            self._reopen(append=False)
            self._writer.writerows(rows)
        self._writer.writerow({key: value for key, value in row.items()})

    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None
