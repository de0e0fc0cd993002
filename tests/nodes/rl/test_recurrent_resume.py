"""Exact resume of a recurrent agent: an interrupted and resumed LSTM run equals an uninterrupted one, so the
per-env states, and the episode ends still on their way to the agent at the checkpoint, carry over."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cli_runs import DNNE, dnne, metric_rows

ROOT = Path(__file__).resolve().parents[3]
LSTM = ROOT / "graphs" / "cartpole_novel_lstm.json"
FIELDS = ("iteration", "env_steps", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction",
          "explained_variance", "learning_rate", "mean_return", "episodes")


def rows(run_dir: Path) -> list[tuple]:
    """The training fields of every metrics row."""
    return metric_rows(run_dir, FIELDS)


@pytest.mark.slow  # a whole CLI run (10-13 s): CI's slow step
def test_lstm_split_by_iterations_equals_one_run(tmp_path: Path) -> None:
    """graphs/cartpole_novel_lstm.json: 2 iterations, then --resume to 6, logs exactly what 6 iterations in one
    go log (episodes end inside the first 2 iterations, so states were reset and carried across the cut)."""
    common = ("--set", "trainer.lr_schedule=constant", "--set", "run.target_return=null", "-q")
    dnne("run", str(LSTM), "--run-dir", str(tmp_path / "whole"), "--set", "run.max_iterations=6", *common)
    dnne("run", str(LSTM), "--run-dir", str(tmp_path / "split"), "--set", "run.max_iterations=2", *common)
    first = json.loads((tmp_path / "split" / "summary.json").read_text())
    assert first["counters"]["episodes"] > 0
    dnne("run", "--resume", str(tmp_path / "split"), "--set", "run.max_iterations=6", "-q")
    whole, split = rows(tmp_path / "whole"), rows(tmp_path / "split")
    assert len(whole) == 6 and split == whole


@pytest.mark.slow
def test_lstm_sigint_then_resume_equals_one_run(tmp_path: Path) -> None:
    """An LSTM run interrupted by SIGINT at an arbitrary moment (dones and observations on their way between the
    step node and the agent) and resumed to the same max_steps logs exactly what the uninterrupted run logs."""
    budget = ("--max-steps", "2048", "--set", "trainer.lr_schedule=constant", "--set", "run.target_return=null",
              "-q")
    dnne("run", str(LSTM), "--run-dir", str(tmp_path / "whole"), *budget)
    run_dir = tmp_path / "split"
    script = (f"{' '.join(DNNE)} run {LSTM} --run-dir {run_dir} {' '.join(budget)} & "
              f"echo $! > {tmp_path}/pid; wait $!; echo $? > {tmp_path}/rc")
    shell = subprocess.Popen(["bash", "-c", script])
    deadline = time.time() + 120
    metrics = run_dir / "metrics.jsonl"
    while not metrics.exists() or len(metrics.read_text().splitlines()) < 3:
        assert time.time() < deadline and shell.poll() is None, "the run did not get going"
        time.sleep(0.05)
    os.kill(int((tmp_path / "pid").read_text()), signal.SIGINT)
    shell.wait(timeout=120)
    assert (tmp_path / "rc").read_text().strip() == "130"
    interrupted = json.loads((run_dir / "summary.json").read_text())
    assert interrupted["stop_reason"] == "interrupted" and 0 < interrupted["env_steps"] < 2048
    dnne("run", "--resume", str(run_dir), *budget)
    assert json.loads((run_dir / "summary.json").read_text())["env_steps"] == 2048
    assert rows(run_dir) == rows(tmp_path / "whole")
