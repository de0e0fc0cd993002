"""Shared by the tests that train through the CLI and compare runs: the command, and the rows a run logged."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DNNE = [sys.executable, "-m", "dnne.runtime.cli"]


def dnne(*args: str) -> None:
    """Run the CLI and require exit 0."""
    done = subprocess.run([*DNNE, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def metric_rows(run_dir: Path, fields: tuple[str, ...]) -> list[tuple]:
    """``fields`` of every row in ``run_dir``'s ``metrics.jsonl``."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [tuple(json.loads(line).get(field) for field in fields) for line in lines]
