"""A split graph is one run: its run directory keeps the logical graph, its final checkpoint holds every process's
node states, and Ctrl-C then --resume continues exactly like the one-process run; play and export work on it."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[3]
CARTPOLE = ROOT / "graphs" / "cartpole_ppo.json"
DNNE = [sys.executable, "-m", "dnne.runtime.cli"]
ENV_GROUP = ("env", "or", "action", "step")
TRAINING_FIELDS = ("iteration", "env_steps", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction",
                   "explained_variance", "learning_rate", "mean_return")


def dnne(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*DNNE, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def training_rows(run_dir: Path) -> list[tuple]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [tuple(row.get(field) for field in TRAINING_FIELDS) for row in rows if "iteration" in row]


@pytest.fixture(scope="module")
def placed(tmp_path_factory) -> Path:
    """The Cartpole graph with its env group in worker 'envs'."""
    document = json.loads(CARTPOLE.read_text())
    document["placement"] = {node_id: "envs" for node_id in ENV_GROUP}
    path = tmp_path_factory.mktemp("graph") / "cartpole_placed.json"
    path.write_text(json.dumps(document))
    return path


@pytest.fixture(scope="module")
def split_run(placed, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "split"
    dnne("run", str(placed), "--run-dir", str(run_dir), "--set", "run.max_iterations=2",
         "--set", "run.target_return=null", "-q")
    return run_dir


def test_the_run_directory_keeps_the_logical_graph(placed, split_run):
    saved = json.loads((split_run / "graph.json").read_text())
    written = json.loads(placed.read_text())
    assert saved["placement"] == written["placement"]
    assert set(saved["nodes"]) == set(written["nodes"])
    assert not any("_dnne_remote" in node["type"] for node in saved["nodes"].values())


def test_the_final_checkpoint_holds_every_process_s_nodes(split_run):
    state = torch.load(sorted((split_run / "checkpoints").iterdir())[-1], weights_only=True)
    assert {"env", "agent", "trainer"} <= set(state["nodes"])  # env in the worker, agent and trainer in main
    assert "missing" not in state
    assert state["windows"]["mean_return"]["samples"]  # the episodes the worker finished, window kept in main


def test_the_summary_says_how_busy_each_process_was(split_run):
    """``cpu_s`` of every worker and of the main process: CPU seconds of the run, so more than nothing in each
    process and at most what every core could spend in the run's wall time."""
    summary = json.loads((split_run / "summary.json").read_text())
    worker, main = summary["placement"]["workers"]["envs"]["cpu_s"], summary["cpu_s"]
    assert 0 < worker and 0 < main
    assert worker + main <= (summary["wall_time_s"] + 1.0) * (os.cpu_count() or 1)


@pytest.mark.slow
def test_play_and_export_work_on_a_split_run(split_run, tmp_path):
    played = dnne("play", str(split_run / "graph.json"), "--checkpoint", str(split_run), "--episodes", "2")
    assert json.loads(played.stdout.strip().splitlines()[-1])["episodes"] >= 2
    dnne("export", str(split_run), "-o", str(tmp_path / "policy.pt"))
    assert (tmp_path / "policy.pt").stat().st_size > 0


@pytest.mark.slow
def test_sigint_then_resume_of_a_split_graph_equals_one_uninterrupted_run(placed, tmp_path):
    """Ctrl-C of a background split run, then --resume to the same budget, logs exactly what the uninterrupted
    split run logs (every loss and counter: the trainer's weights and the worker's envs continued exactly)."""
    budget = ("--max-steps", "12800", "--set", "run.target_return=null", "-q")
    dnne("run", str(placed), "--run-dir", str(tmp_path / "whole"), *budget)
    run_dir = tmp_path / "split"
    script = (f"{' '.join(DNNE)} run {placed} --run-dir {run_dir} {' '.join(budget)} & "
              f"echo $! > {tmp_path}/pid; wait $!; echo $? > {tmp_path}/rc")
    shell = subprocess.Popen(["bash", "-c", script])
    deadline = time.time() + 90
    metrics = run_dir / "metrics.jsonl"
    while not metrics.exists() or len(metrics.read_text().splitlines()) < 5:
        assert time.time() < deadline and shell.poll() is None, "the run did not get going"
        time.sleep(0.05)
    os.kill(int((tmp_path / "pid").read_text()), signal.SIGINT)
    shell.wait(timeout=90)
    assert (tmp_path / "rc").read_text().strip() == "130"
    interrupted = json.loads((run_dir / "summary.json").read_text())
    assert interrupted["stop_reason"] == "interrupted" and 0 < interrupted["env_steps"] < 12800
    dnne("run", "--resume", str(run_dir), *budget)
    resumed = json.loads((run_dir / "summary.json").read_text())
    whole = json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert resumed["env_steps"] == whole["env_steps"] == 12800 and resumed["iterations"] == whole["iterations"]
    assert training_rows(run_dir) == training_rows(tmp_path / "whole")


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_kill_9_of_a_worker_names_it_its_exit_code_and_last_checkpoint_and_leaves_nothing(placed, tmp_path):
    run_dir = tmp_path / "run"
    main = subprocess.Popen([*DNNE, "run", str(placed), "--run-dir", str(run_dir), "--set", "run.target_return=null",
                             "--checkpoint-every", "1", "-q"], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run_dir / "checkpoints").is_dir() or not list((run_dir / "checkpoints").glob("ckpt-*.pt")):
        assert time.time() < deadline and main.poll() is None, "no checkpoint was written"
        time.sleep(0.05)
    workers = children(main.pid)
    assert len(workers) == 1
    os.kill(workers[0], signal.SIGKILL)
    _, stderr = main.communicate(timeout=120)
    assert main.returncode == 1
    assert "worker 'envs' (nodes action, env, or, step) died: exit code -9 (SIGKILL)" in stderr
    assert f"last checkpoint: {run_dir / 'checkpoints'}/ckpt-" in stderr
    assert "Traceback" not in stderr
    assert not alive(workers[0])
    assert not list(Path("/dev/shm").glob(f"dnne-{main.pid}-*"))  # the slot files went with the run
    assert json.loads((run_dir / "summary.json").read_text())["stop_reason"] == "failed"


@pytest.mark.slow
def test_a_periodic_mid_run_checkpoint_of_a_split_run_resumes_exactly(placed, tmp_path):
    """Checkpoints every update: each mid-run one holds every process's nodes (taken at one consistent cut), and
    resuming from the one after update 2 logs exactly what the uninterrupted run logged for update 3."""
    run_dir = tmp_path / "whole"
    budget = ("--set", "run.max_iterations=3", "--set", "run.target_return=null", "-q")
    dnne("run", str(placed), "--run-dir", str(run_dir), "--checkpoint-every", "1", *budget)
    saved = sorted((run_dir / "checkpoints").glob("ckpt-*.pt"))
    assert [p.name for p in saved] == ["ckpt-00000001.pt", "ckpt-00000002.pt", "ckpt-00000003.pt"]
    middle = torch.load(saved[1], weights_only=True)
    assert "missing" not in middle and {"env", "agent", "trainer"} <= set(middle["nodes"])
    assert middle["counters"]["iterations"] == 2
    resumed = tmp_path / "resumed"
    shutil.copytree(run_dir, resumed)
    (resumed / "checkpoints" / saved[2].name).unlink()
    dnne("run", "--resume", str(resumed), *budget)
    assert training_rows(resumed) == training_rows(run_dir)
    assert json.loads((resumed / "summary.json").read_text())["env_steps"] == \
        json.loads((run_dir / "summary.json").read_text())["env_steps"]


def test_a_learner_in_a_worker_checkpoints_mid_run_at_its_next_update_and_resumes_exactly(tmp_path):
    """The trainer in worker 'learner', the env group in worker 'envs': a checkpoint due at an update the main
    process hears of afterwards is taken at the learner's next update, with every process's nodes, and resumes
    exactly."""
    document = json.loads(CARTPOLE.read_text())
    document["placement"] = {node_id: "envs" for node_id in ENV_GROUP} | {"trainer": "learner"}
    graph = tmp_path / "learner.json"
    graph.write_text(json.dumps(document))
    run_dir = tmp_path / "whole"
    budget = ("--set", "run.max_iterations=4", "--set", "run.target_return=null", "-q")
    dnne("run", str(graph), "--run-dir", str(run_dir), "--checkpoint-every", "1", *budget)
    saved = sorted((run_dir / "checkpoints").glob("ckpt-*.pt"))
    assert [p.name for p in saved] == ["ckpt-00000002.pt", "ckpt-00000004.pt"]
    middle = torch.load(saved[0], weights_only=True)
    assert "missing" not in middle and {"env", "agent", "trainer"} <= set(middle["nodes"])
    assert middle["counters"]["iterations"] == 2
    resumed = tmp_path / "resumed"
    shutil.copytree(run_dir, resumed)
    (resumed / "checkpoints" / saved[1].name).unlink()
    dnne("run", "--resume", str(resumed), *budget)
    assert training_rows(resumed) == training_rows(run_dir)
