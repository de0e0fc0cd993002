"""Memory pays on a partially observed task: the LSTM graph solves CartpoleNoVel within 100k env steps, the same
graph with an MLP agent does not (slow; seeds 2 and 3 are in benchmarks/recurrent.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dnne.runtime.cli import main

GRAPH = Path(__file__).resolve().parents[3] / "graphs" / "cartpole_novel_lstm.json"


def run(tmp_path: Path, *overrides: str) -> dict:
    """Run the graph with seed 1 (no wall-clock limit to speak of: the step budget decides) and return its
    summary."""
    args = ["run", str(GRAPH), "--seed", "1", "--run-dir", str(tmp_path / "run"), "--timeout", "2h"]
    for override in overrides:
        args += ["--set", override]
    assert main(args) == 0
    return json.loads((tmp_path / "run" / "summary.json").read_text())


@pytest.mark.slow
def test_lstm_solves_cartpole_without_velocities(tmp_path: Path) -> None:
    summary = run(tmp_path)
    assert summary["stop_reason"] == "target_return", summary
    assert summary["env_steps"] <= 100_000


@pytest.mark.slow
def test_mlp_does_not_solve_cartpole_without_velocities(tmp_path: Path) -> None:
    summary = run(tmp_path, "agent.recurrent=none")
    assert summary["stop_reason"] == "max_steps", summary
    assert summary["counters"]["best_mean_return"] < 475
