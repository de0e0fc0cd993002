"""Learning checks of the shipped graphs: each runs ``dnne run`` with a fixed seed and step budget."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dnne.runtime.cli import main

ROOT = Path(__file__).resolve().parents[2]
GRAPHS = ROOT / "graphs"
DNNE_EXAMPLE = ROOT / "tests" / "data" / "dnne" / "Cartpole_PPO.json"  # DNNE's own file, byte for byte
TRAINING_FIELDS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "explained_variance")


pytestmark = pytest.mark.usefixtures("one_thread")  # as ``dnne run`` does (tests/nodes/conftest.py)


def run(path: Path, run_dir: Path, *extra: str) -> dict[str, Any]:
    """Run ``path`` with seed 1 into ``run_dir`` and return its summary.json."""
    code = main(["run", str(path), "--run-dir", str(run_dir), "-q", "--seed", "1", "--threads", "1", *extra])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["error"] is None, summary["error"]
    assert code == 0
    return summary


def training_rows(run_dir: Path) -> list[tuple[float, ...]]:
    """The trainer's training fields, one tuple per update, from metrics.jsonl."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [tuple(row[field] for field in TRAINING_FIELDS) for row in rows if "policy_loss" in row]


def test_cartpole_solves(tmp_path: Path) -> None:
    """graphs/cartpole_ppo.json reaches a mean return of 475 within 100k env steps."""
    summary = run(GRAPHS / "cartpole_ppo.json", tmp_path, "--max-steps", "100000")
    assert summary["solved"] and summary["best_mean_return"] >= 475


@pytest.mark.slow
def test_pendulum_solves(tmp_path: Path) -> None:
    """graphs/pendulum_ppo.json reaches a mean return of -250 within 200k env steps."""
    summary = run(GRAPHS / "pendulum_ppo.json", tmp_path, "--max-steps", "200000")
    assert summary["solved"] and summary["best_mean_return"] >= -250


@pytest.mark.slow
def test_dnne_format_cartpole_learns(tmp_path: Path) -> None:
    """graphs/dnne/cartpole_ppo.json (DNNE workflow format, CartpoleIsaac) reaches 450 within 200k env steps."""
    summary = run(GRAPHS / "dnne" / "cartpole_ppo.json", tmp_path, "--set", "run.target_return=450",
                  "--max-steps", "200000")
    assert summary["solved"] and summary["best_mean_return"] >= 450


@pytest.mark.slow
def test_cartpole_async_solves(tmp_path: Path) -> None:
    """The Cartpole graph with trainer.mode=async also reaches 475, within 150k env steps."""
    summary = run(GRAPHS / "cartpole_ppo.json", tmp_path, "--set", "trainer.mode=async", "--max-steps", "150000")
    assert summary["solved"] and summary["best_mean_return"] >= 475


def test_same_seed_same_training(tmp_path: Path) -> None:
    """Two Cartpole runs with one seed log identical losses, KL, clip fractions and explained variances."""
    extra = ("--max-steps", "8192", "--set", "run.target_return=null")  # 16 updates of 32 envs x 16 steps
    run(GRAPHS / "cartpole_ppo.json", tmp_path / "a", *extra)
    run(GRAPHS / "cartpole_ppo.json", tmp_path / "b", *extra)
    first, second = training_rows(tmp_path / "a"), training_rows(tmp_path / "b")
    assert len(first) >= 15
    assert first == second


@pytest.mark.slow
def test_dnne_example_learns(tmp_path: Path) -> None:
    """DNNE's own Cartpole_PPO.json, with 256 envs, reaches 400 within 500k env steps."""
    summary = run(DNNE_EXAMPLE, tmp_path, "--set", "1.num_envs=256", "--set", "run.target_return=400",
                  "--max-steps", "500000")
    assert summary["solved"] and summary["best_mean_return"] >= 400
