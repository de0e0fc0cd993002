"""Evaluation you can trust: exactly N fresh, seeded episodes of any size, not bound by the training graph's stop
conditions, with mean, std and every episode reported."""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CARTPOLE = ROOT / "graphs" / "cartpole_ppo.json"
DNNE = [sys.executable, "-m", "dnne.runtime.cli"]


def evaluate(command: str, run_dir: Path, *args: str) -> dict:
    """``dnne play|eval`` of ``run_dir``'s checkpoint; the JSON report."""
    done = subprocess.run([*DNNE, command, str(CARTPOLE), "--checkpoint", str(run_dir), "-q", *args],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short training run of 8 envs."""
    run_dir = tmp_path_factory.mktemp("eval") / "run"
    done = subprocess.run([*DNNE, "run", str(CARTPOLE), "--set", "run.target_return=null", "--max-steps", "2048",
                           "--run-dir", str(run_dir), "-q"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return run_dir


class TestEvaluation:
    @pytest.mark.nodes
    def test_exactly_n_episodes_with_statistics(self, trained: Path) -> None:
        """eval reports exactly N episodes, each with its return and length, and their mean and std."""
        report = evaluate("eval", trained, "--episodes", "5")
        assert report["episodes"] == 5 and len(report["returns"]) == 5 and len(report["lengths"]) == 5
        assert report["mean_return"] == pytest.approx(statistics.fmean(report["returns"]))
        assert report["std_return"] == pytest.approx(statistics.pstdev(report["returns"]))
        assert report["returns"] == [float(length) for length in report["lengths"]]  # Cartpole: +1 per step

    @pytest.mark.nodes
    def test_any_num_envs_and_fresh_episodes(self, trained: Path) -> None:
        """A checkpoint of 8 envs evaluates on 1 env (the envs start fresh, not from the checkpoint's state)."""
        report = evaluate("play", trained, "--episodes", "3", "--set", "env.num_envs=1")
        assert report["episodes"] == 3
        assert report["env_steps"] == sum(report["lengths"])  # one env: every step belongs to a counted episode

    def test_seeded_and_deterministic(self, trained: Path) -> None:
        """The same --seed gives the same episodes; another seed other episodes."""
        first = evaluate("eval", trained, "--episodes", "4", "--seed", "1", "--set", "env.num_envs=2")
        again = evaluate("eval", trained, "--episodes", "4", "--seed", "1", "--set", "env.num_envs=2")
        other = evaluate("eval", trained, "--episodes", "4", "--seed", "2", "--set", "env.num_envs=2")
        assert first["returns"] == again["returns"]
        assert first["returns"] != other["returns"]

    @pytest.mark.nodes
    def test_not_bound_by_training_stop_conditions(self, trained: Path) -> None:
        """The training graph's max_steps (here 10 env steps) does not cut the evaluation short."""
        report = evaluate("eval", trained, "--episodes", "3", "--set", "env.num_envs=1", "--set",
                          "run.max_steps=10")
        assert report["episodes"] == 3 and report["env_steps"] > 10
