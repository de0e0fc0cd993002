"""Runs you can trust: checkpoints by time and at a failure, settings kept, one run per directory, resumes that
never falsify records, checkpoint files that survive crashes and full disks."""
from __future__ import annotations

import asyncio
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fault_nodes import faulty_graph
from toy_nodes import toy_registry

from dnne.runtime import checkpoint
from dnne.runtime.graph import Graph
from dnne.runtime.loading import load_graph
from dnne.runtime.run_owner import RunDirectoryError, RunLock, claim
from dnne.runtime.rundir import RunDirectory, drop_replayed_rows
from dnne.runtime.runner import GraphRun

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CARTPOLE = ROOT / "graphs" / "presets" / "cartpole_zoo.json"
DNNE = [sys.executable, "-m", "dnne.runtime.cli"]
STEPS_PER_ITERATION = 256  # presets/cartpole_zoo.json: 8 envs x horizon 32


def dnne(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess, with the fault plugin importable."""
    env = dict(os.environ, PYTHONPATH=f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return subprocess.run([*DNNE, *args], capture_output=True, text=True, timeout=timeout, env=env)


def write_faulty(tmp_path: Path, fault: str, at: int) -> Path:
    """The cartpole graph with a fault node on its rewards, no target return."""
    document = faulty_graph(json.loads(CARTPOLE.read_text()), fault, at)
    document["run"] = dict(document.get("run", {}), target_return=None)
    path = tmp_path / f"{fault}.json"
    path.write_text(json.dumps(document))
    return path


def saved(run_dir: Path) -> list[str]:
    """The checkpoint file names of a run."""
    return sorted(p.name for p in (run_dir / "checkpoints").glob("ckpt-*.pt"))


def trainer_iterations(run_dir: Path) -> list[int]:
    """The ``iteration`` of every trainer metrics row, in file order."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [row["iteration"] for row in rows if row.get("node") == "trainer" and "iteration" in row]


class TestFailureCheckpoints:
    @pytest.mark.nodes
    def test_node_exception_saves_last_consistent_state(self, tmp_path: Path) -> None:
        """A node raising at step 100 (after 3 updates) leaves the state after update 3, and it resumes."""
        run_dir = tmp_path / "r"
        done = dnne("run", str(write_faulty(tmp_path, "raise", 100)), "--plugin", "fault_nodes", "--run-dir",
                    str(run_dir), "--max-steps", "2048", "-q")
        assert done.returncode == 1 and "injected fault" in done.stderr and "Traceback" not in done.stderr
        assert saved(run_dir) == ["ckpt-00000003.pt"]
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["stop_reason"] == "failed" and summary["last_checkpoint"].endswith("ckpt-00000003.pt")
        state = checkpoint.load(run_dir)
        assert state["counters"]["env_steps"] == 3 * STEPS_PER_ITERATION
        again = dnne("run", "--resume", str(run_dir), "--plugin", "fault_nodes", "--set", "fault.fault=none", "-q")
        assert again.returncode == 0, again.stderr
        assert json.loads((run_dir / "summary.json").read_text())["env_steps"] >= 2048

    @pytest.mark.nodes
    def test_nan_stop_keeps_a_real_checkpoint(self, tmp_path: Path) -> None:
        """NaN rewards from step 100 stop the trainer; the checkpoint it promises exists and holds finite weights."""
        run_dir = tmp_path / "r"
        done = dnne("run", str(write_faulty(tmp_path, "nan", 100)), "--plugin", "fault_nodes", "--run-dir",
                    str(run_dir), "--max-steps", "100000", "-q")
        assert done.returncode == 1 and "non-finite" in done.stderr
        (name,) = saved(run_dir)  # the updates that were skipped for NaN losses left the weights as they were
        assert json.loads((run_dir / "summary.json").read_text())["last_checkpoint"].endswith(name)
        weights = checkpoint.load(run_dir)["nodes"]["agent"]
        tensors = [t for t in _tensors(weights)]
        assert tensors and all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point())

    @pytest.mark.nodes
    def test_killed_run_resumes_without_duplicate_rows(self, tmp_path: Path) -> None:
        """A process that dies after its checkpoint at update 2 (rows up to update 3) resumes with each update's
        metrics row exactly once, and with its saved --checkpoint-every."""
        run_dir = tmp_path / "r"
        done = dnne("run", str(write_faulty(tmp_path, "exit", 100)), "--plugin", "fault_nodes", "--run-dir",
                    str(run_dir), "--max-steps", "4096", "--checkpoint-every", "2", "-q")
        assert done.returncode == 3
        assert saved(run_dir) == ["ckpt-00000002.pt"] and trainer_iterations(run_dir) == [1, 2, 3]
        again = dnne("run", "--resume", str(run_dir), "--plugin", "fault_nodes", "--set", "fault.fault=none",
                     "--max-steps", "2048", "-q")
        assert again.returncode == 0, again.stderr
        assert trainer_iterations(run_dir) == list(range(1, 9))
        assert saved(run_dir) == ["ckpt-00000004.pt", "ckpt-00000006.pt", "ckpt-00000008.pt"]


def _tensors(value: object) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished short run."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    done = dnne("run", str(CARTPOLE), "--set", "run.target_return=null", "--max-steps", "1024", "--run-dir",
                str(run_dir), "-q")
    assert done.returncode == 0, done.stderr
    return run_dir


class TestOneRunPerDirectory:
    @pytest.mark.nodes
    def test_existing_run_dir_refused(self, finished: Path) -> None:
        """A second run into a directory holding a run is bad input and changes nothing there."""
        before = {p: p.stat().st_mtime_ns for p in finished.rglob("*")}
        done = dnne("run", str(CARTPOLE), "--run-dir", str(finished), "--max-steps", "256", "-q")
        assert done.returncode == 2 and "--resume" in done.stderr and "--force" in done.stderr
        assert {p: p.stat().st_mtime_ns for p in finished.rglob("*")} == before

    @pytest.mark.nodes
    def test_force_replaces(self, tmp_path: Path) -> None:
        """--force replaces the old run: its checkpoints, metrics and summary are gone; other files stay."""
        run_dir = tmp_path / "r"
        (run_dir / "checkpoints").mkdir(parents=True)
        (run_dir / "checkpoints" / "ckpt-00000099.pt").write_bytes(b"old")
        (run_dir / "metrics.jsonl").write_text('{"env_steps": 999999}\n')
        (run_dir / "notes.txt").write_text("mine")
        done = dnne("run", str(CARTPOLE), "--run-dir", str(run_dir), "--max-steps", "512", "--force", "-q")
        assert done.returncode == 0, done.stderr
        assert saved(run_dir) == ["ckpt-00000002.pt"]
        assert "999999" not in (run_dir / "metrics.jsonl").read_text()
        assert (run_dir / "notes.txt").read_text() == "mine"

    @pytest.mark.nodes
    def test_lock_refuses_a_second_writer(self, tmp_path: Path) -> None:
        """While one run holds the directory's lock, another (even --resume or --force) is refused."""
        lock = RunLock(tmp_path / "r")
        lock.acquire()
        try:
            (tmp_path / "r" / "graph.json").write_text("{}")
            with pytest.raises(RunDirectoryError, match="another run"):
                claim(tmp_path / "r", resume=True)
            done = dnne("run", str(CARTPOLE), "--run-dir", str(tmp_path / "r"), "--force", "-q")
            assert done.returncode == 2 and "another run" in done.stderr
        finally:
            lock.release()
        claim(tmp_path / "r", resume=True).release()

    def test_resume_of_nothing_refused(self, tmp_path: Path) -> None:
        """--resume of a directory without a run is bad input."""
        done = dnne("run", "--resume", str(tmp_path / "none"), "-q")
        assert done.returncode == 2 and "holds no run" in done.stderr


class TestFailedResume:
    @pytest.mark.parametrize("args", [["--set", "agent.hidden_sizes=[32]"], ["--set", "env.num_envs=4"],
                                      [str(ROOT / "graphs" / "pendulum_ppo.json")]])
    def test_failed_resume_changes_nothing(self, finished: Path, args: list[str]) -> None:
        """A resume whose checkpoint does not fit (shapes, another graph) is bad input (exit 2, no traceback) and
        leaves summary, metrics, graph and settings as they were."""
        names = ("summary.json", "metrics.jsonl", "graph.json", "run.json")
        before = {name: (finished / name).read_bytes() for name in names}
        done = dnne("run", "--resume", str(finished), *args, "-q")
        assert done.returncode == 2, done.stderr
        assert "does not fit" in done.stderr or "different graph" in done.stderr
        assert "Traceback" not in done.stderr
        assert {name: (finished / name).read_bytes() for name in names} == before

    def test_truncated_newest_falls_back(self, finished: Path, tmp_path: Path) -> None:
        """A truncated newest checkpoint is skipped with a warning; the newest readable one is used."""
        run_dir = tmp_path / "copy"
        (run_dir / "checkpoints").mkdir(parents=True)
        good = sorted((finished / "checkpoints").glob("ckpt-*.pt"))[-1]
        (run_dir / "checkpoints" / good.name).write_bytes(good.read_bytes())
        (run_dir / "checkpoints" / "ckpt-00000099.pt").write_bytes(good.read_bytes()[:1000])
        state = checkpoint.load(run_dir)
        assert state["counters"]["iterations"] == int(good.stem.split("-")[1])
        (run_dir / "checkpoints" / good.name).write_bytes(b"")
        with pytest.raises(checkpoint.CheckpointError, match="no readable checkpoint"):
            checkpoint.load(run_dir)


class TestCheckpointFiles:
    def test_save_syncs_and_cleans_up(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A save is fsynced before it is renamed into place; a failing save leaves no partial file and says the
        disk is full."""
        synced = []
        real_fsync = os.fsync
        monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
        path = checkpoint.save({"format": 1, "nodes": {}}, tmp_path, 1, 3)
        assert path.exists() and len(synced) >= 1

        def full(*args: object, **kwargs: object) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(torch, "save", full)
        with pytest.raises(checkpoint.CheckpointError, match="no space left"):
            checkpoint.save({"format": 1, "nodes": {}}, tmp_path, 2, 3)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-00000001.pt"]

    def test_stale_partials_removed_at_start(self, tmp_path: Path) -> None:
        """A ``.partial`` a killed run left behind is removed when the next run starts."""
        (tmp_path / "checkpoints").mkdir()
        (tmp_path / "checkpoints" / "ckpt-00000001.pt.partial").write_bytes(b"")
        run_toy(tmp_path, ticks=2)
        assert not list((tmp_path / "checkpoints").glob("*.partial"))

    def test_disk_full_mid_run_stops_with_summary(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A periodic checkpoint that cannot be written stops the run, and summary.json says why."""
        def full(*args: object, **kwargs: object) -> None:
            raise checkpoint.CheckpointError("cannot write checkpoint x: no space left on the device")

        monkeypatch.setattr(checkpoint, "save", full)
        result, directory = run_toy(tmp_path, ticks=1000, checkpoint_every=3)
        summary = json.loads((tmp_path / "summary.json").read_text())
        assert result.stop_reason == "failed" and result.counters["iterations"] < 1000
        assert "no space left" in summary["checkpoint_error"] and summary["last_checkpoint"] is None


class TestPeriodic:
    def test_checkpoints_by_time(self, tmp_path: Path) -> None:
        """With a short interval, checkpoints are written during the run, not only at its end."""
        saves = []
        real = checkpoint.save

        def counting(state: dict, *args: object) -> Path:
            saves.append(int(state["counters"]["iterations"]))
            return real(state, *args)

        checkpoint.save, original = counting, checkpoint.save
        try:
            run_toy(tmp_path, ticks=20, interval_s=0.05, delay=0.02)
        finally:
            checkpoint.save = original
        assert len(saves) >= 3 and saves[-1] == 20 and saves[0] < 20

    def test_drop_replayed_rows(self, tmp_path: Path) -> None:
        """Rows past the resumed step count (of the step counter's column) go; earlier rows, rows without the
        column and unreadable lines stay."""
        path = tmp_path / "metrics.jsonl"
        path.write_text('{"work": 1}\n{"work": 5}\nnot json\n{"work": 6}\n{"other": 9}\n')
        assert drop_replayed_rows(path, 5, "work") == 1
        assert path.read_text() == '{"work": 1}\n{"work": 5}\nnot json\n{"other": 9}\n'


def run_toy(run_dir: Path, ticks: int, checkpoint_every: int = 0, interval_s: float | None = None,
            delay: float = 0.0) -> tuple[object, RunDirectory]:
    """A ticker loop counting one iteration per tick, with a run directory."""
    registry = toy_registry()
    graph = Graph().add("t", "Ticker", iterations=True, steps_per_tick=1, stop_after=ticks, delay=delay)
    graph.add("e", "Echo").link("t.tick", "e.tick").link("e.done", "t.trigger")
    directory = RunDirectory(run_dir, checkpoint_every, keep=1000, tensorboard=False,
                             checkpoint_interval_s=interval_s)
    run = GraphRun(load_graph(graph, registry=registry), registry, run_dir=run_dir, hooks=[directory])
    result = asyncio.run(asyncio.wait_for(run.execute(), 60))
    return result, directory
