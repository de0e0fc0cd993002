"""Exact resume with the built-in envs on CPU: an interrupted and resumed run equals an uninterrupted one."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CARTPOLE = ROOT / "graphs" / "presets" / "cartpole_zoo.json"  # 8 envs x 32 steps: 256 env steps an update
PENDULUM = ROOT / "graphs" / "pendulum_ppo.json"
DNNE = [sys.executable, "-m", "dnne.runtime.cli"]
TRAINING_FIELDS = ("iteration", "env_steps", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction",
                   "explained_variance", "learning_rate", "mean_return")


def dnne(*args: str) -> None:
    """Run the CLI and require exit 0."""
    done = subprocess.run([*DNNE, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def training_rows(run_dir: Path) -> list[tuple]:
    """The training fields of every metrics row."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [tuple(row.get(field) for field in TRAINING_FIELDS) for row in rows]


class TestExactResume:
    def test_split_by_iterations_equals_one_run(self, tmp_path: Path) -> None:
        """4 iterations, then --resume to 12, logs exactly what 12 iterations in one go log."""
        common = ("--set", "trainer.lr_schedule=constant", "--set", "run.target_return=null", "-q")
        dnne("run", str(CARTPOLE), "--run-dir", str(tmp_path / "whole"), "--set", "run.max_iterations=12", *common)
        dnne("run", str(CARTPOLE), "--run-dir", str(tmp_path / "split"), "--set", "run.max_iterations=4", *common)
        dnne("run", "--resume", str(tmp_path / "split"), "--set", "run.max_iterations=12", "-q")
        whole, split = training_rows(tmp_path / "whole"), training_rows(tmp_path / "split")
        assert len(whole) == 12 and split == whole

    def test_value_normalisation_resumes(self, tmp_path: Path) -> None:
        """graphs/pendulum_ppo.json (trainer.normalize_value=true, input normalisation, adaptive schedule): 3
        iterations, then --resume to 6, logs exactly what 6 iterations in one go log."""
        common = ("--set", "run.target_return=null", "-q")
        dnne("run", str(PENDULUM), "--run-dir", str(tmp_path / "whole"), "--set", "run.max_iterations=6", *common)
        dnne("run", str(PENDULUM), "--run-dir", str(tmp_path / "split"), "--set", "run.max_iterations=3", *common)
        dnne("run", "--resume", str(tmp_path / "split"), "--set", "run.max_iterations=6", "-q")
        whole, split = training_rows(tmp_path / "whole"), training_rows(tmp_path / "split")
        assert len(whole) == 6 and split == whole

    @pytest.mark.slow
    def test_sigint_then_resume_equals_one_run(self, tmp_path: Path) -> None:
        """A run interrupted by SIGINT as a background job and resumed to the same max_steps (linear LR schedule
        included) logs exactly what the uninterrupted run logs, with counters continuing."""
        budget = ("--max-steps", "5120", "--set", "run.target_return=null", "-q")
        dnne("run", str(CARTPOLE), "--run-dir", str(tmp_path / "whole"), *budget)
        run_dir = tmp_path / "split"
        script = (f"{' '.join(DNNE)} run {CARTPOLE} --run-dir {run_dir} {' '.join(budget)} & "
                  f"echo $! > {tmp_path}/pid; wait $!; echo $? > {tmp_path}/rc")
        shell = subprocess.Popen(["bash", "-c", script])
        deadline = time.time() + 60
        metrics = run_dir / "metrics.jsonl"
        while not metrics.exists() or len(metrics.read_text().splitlines()) < 5:
            assert time.time() < deadline and shell.poll() is None, "the run did not get going"
            time.sleep(0.05)
        os.kill(int((tmp_path / "pid").read_text()), signal.SIGINT)
        shell.wait(timeout=60)
        assert (tmp_path / "rc").read_text().strip() == "130"
        interrupted = json.loads((run_dir / "summary.json").read_text())
        assert interrupted["stop_reason"] == "interrupted" and 0 < interrupted["env_steps"] < 5120
        dnne("run", "--resume", str(run_dir), *budget)
        resumed = json.loads((run_dir / "summary.json").read_text())
        assert resumed["env_steps"] == 5120 and resumed["iterations"] == 20
        assert training_rows(run_dir) == training_rows(tmp_path / "whole")
