"""The fault-injection plugin in running PPO graphs, sync and async, in one process: each fault ends the run the
way it should, naming the node; a node awaiting forever is reported like a deadlock; a node blocking the loop is
stopped by the timeout; a node ending the process loses at most the update under way."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fault_nodes import fault_registry, faulty_graph

from dnne.runtime.loading import load_graph
from dnne.runtime.runner import DeadlockError, GraphRun, RunResult

ROOT = Path(__file__).resolve().parents[2]
# 8 envs x horizon 32: 256 env steps an update
CARTPOLE = json.loads((ROOT / "graphs" / "presets" / "cartpole_zoo.json").read_text())
REGISTRY = fault_registry()


def run_faulty(fault: str, mode: str, at: int = 100, hang_grace_s: float = 60.0) -> tuple[GraphRun, RunResult]:
    """The cartpole graph with ``fault`` on its rewards from step ``at``, trained in ``mode``."""
    document = faulty_graph(CARTPOLE, fault, at)
    document["nodes"]["trainer"] = dict(document["nodes"]["trainer"])
    document["nodes"]["trainer"]["params"] = dict(document["nodes"]["trainer"]["params"], mode=mode)
    document["run"] = dict(document["run"], target_return=None, max_steps=4096, timeout=None)
    graph_run = GraphRun(load_graph(document, registry=REGISTRY), REGISTRY)
    graph_run.hang_grace_s = hang_grace_s
    return graph_run, asyncio.run(asyncio.wait_for(graph_run.execute(), 180))


@pytest.mark.parametrize("mode", ["sync", "async"])
class TestFaults:
    @pytest.mark.nodes
    def test_raise(self, mode: str) -> None:
        """A node raising stops the run, blamed on that node with its cause."""
        _, result = run_faulty("raise", mode)
        assert result.stop_reason == "failed" and result.error is not None
        assert result.error.node_id == "fault" and "injected fault" in str(result.error.cause)
        assert result.counters["env_steps"] < 4096

    @pytest.mark.nodes
    @pytest.mark.parametrize("value", ["nan", "inf"])
    def test_non_finite_rewards(self, mode: str, value: str) -> None:
        """Non-finite rewards make the trainer stop after its updates in a row fail, naming the trainer."""
        _, result = run_faulty(value, mode)
        assert result.stop_reason == "failed" and result.error is not None
        assert result.error.node_id == "trainer" and "non-finite" in str(result.error.cause)

    @pytest.mark.nodes
    def test_await_forever(self, mode: str) -> None:
        """A node awaiting a future nobody completes is reported like a deadlock, with where it waits."""
        _, result = run_faulty("hang", mode, hang_grace_s=2.0)
        assert result.stop_reason == "failed" and result.error is not None
        assert result.error.node_id == "fault" and isinstance(result.error.cause, DeadlockError)
        assert "fault awaits in compute" in str(result.error.cause)

    @pytest.mark.nodes
    def test_no_fault(self, mode: str) -> None:
        """The fault node passes rewards through untouched until its firing: the run ends normally."""
        _, result = run_faulty("none", mode)
        assert result.stop_reason == "max_steps" and result.error is None


HERE = Path(__file__).resolve().parent
DNNE = [sys.executable, "-m", "dnne.runtime.cli"]
ENV = dict(os.environ, PYTHONPATH=f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")


def faulty_file(tmp_path: Path, fault: str, mode: str, at: int) -> Path:
    """The cartpole graph with ``fault`` from step ``at``, in ``mode``, as a file for the CLI."""
    document = faulty_graph(CARTPOLE, fault, at)
    document["nodes"]["trainer"] = dict(document["nodes"]["trainer"])
    document["nodes"]["trainer"]["params"] = dict(document["nodes"]["trainer"]["params"], mode=mode)
    document["run"] = dict(document["run"], target_return=None, max_steps=4096, timeout=None)
    path = tmp_path / f"{fault}.json"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize("mode", ["sync", pytest.param("async", marks=pytest.mark.slow)])
class TestProcessFaults:
    def test_exit_loses_at_most_the_last_interval(self, mode: str, tmp_path: Path) -> None:
        """A node ending the process (os._exit) mid-run leaves the checkpoints taken before it, and the run resumes
        from the newest of them."""
        # the fault node fires once per step of 8 envs: step 300 is env step 2400, after 9 updates of 256
        graph, run_dir = faulty_file(tmp_path, "exit", mode, 300), tmp_path / "r"
        done = subprocess.run([*DNNE, "run", str(graph), "--plugin", "fault_nodes", "--run-dir", str(run_dir),
                               "--checkpoint-every", "1", "-q"], capture_output=True, text=True, env=ENV, timeout=300)
        assert done.returncode == 3  # the fault's own exit status: nothing ran after it
        kept = sorted((run_dir / "checkpoints").glob("ckpt-*.pt"))
        assert kept and int(kept[-1].stem.split("-")[1]) >= 7  # at most the updates under way are lost
        resumed = subprocess.run([*DNNE, "run", "--resume", str(run_dir), str(faulty_file(tmp_path, "none", mode, 1)),
                                  "--plugin", "fault_nodes", "-q"], capture_output=True, text=True, env=ENV,
                                 timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["stop_reason"] == "max_steps" and summary["counters"]["env_steps"] >= 4096

    def test_block_stopped_by_timeout(self, mode: str, tmp_path: Path) -> None:
        """A node blocking the event loop is stopped by --timeout and named in the summary, in both modes."""
        graph, run_dir = faulty_file(tmp_path, "block", mode, 100), tmp_path / "r"
        done = subprocess.run([*DNNE, "run", str(graph), "--plugin", "fault_nodes", "--run-dir", str(run_dir), "-q",
                               "--timeout", "8s", "--no-uvloop"], capture_output=True, text=True, env=ENV,
                              timeout=120)
        assert done.returncode == 1 and "timeout while the event loop is blocked" in done.stderr
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["stop_reason"] == "timeout" and summary["error"]["node"] == "fault"
