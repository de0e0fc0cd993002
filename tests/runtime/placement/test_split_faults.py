"""The fault-injection plugin in split PPO graphs, sync and async: the env group and the fault node run in worker
'envs', the agent and the trainer in the main process. Each fault stops the run with an error naming the node and
its part, every worker process ends, and the newest checkpoint is at most one update old and complete."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fault_nodes import faulty_graph

from dnne.runtime import checkpoint
from dnne.runtime.loading import load_graph
from dnne.runtime.registry import default_registry
from dnne.runtime.rundir import RunDirectory
from dnne.runtime.runner import GraphRun, RunResult

ROOT = Path(__file__).resolve().parents[3]
# 8 envs x horizon 32: 256 env steps an update; the fault node fires once per step of the 8 envs
CARTPOLE = json.loads((ROOT / "graphs" / "presets" / "cartpole_zoo.json").read_text())
PART = {node_id: "envs" for node_id in ("env", "or", "action", "step", "fault")}


@pytest.fixture(scope="module")
def registry():
    """The installed nodes and ``Fault``, loaded as a plugin module (the worker loads it by name too)."""
    registry = default_registry()
    registry.load_plugin("fault_nodes")
    assert not registry.plugin_errors, registry.plugin_errors
    return registry


def run_faulty(registry, run_dir: Path, fault: str, mode: str, at: int = 100,
               hang_grace_s: float = 60.0) -> tuple[GraphRun, RunResult]:
    """The split cartpole graph with ``fault`` on its rewards from step ``at`` (after 3 updates), trained in
    ``mode``, checkpointing every update."""
    document = faulty_graph(CARTPOLE, fault, at)
    document["nodes"]["trainer"] = dict(document["nodes"]["trainer"])
    document["nodes"]["trainer"]["params"] = dict(document["nodes"]["trainer"]["params"], mode=mode)
    document["run"] = dict(document["run"], target_return=None, max_steps=4096, timeout=None)
    document["placement"] = PART
    graph_run = GraphRun(load_graph(document, registry=registry), registry, run_dir=run_dir,
                         hooks=[RunDirectory(run_dir, checkpoint_every=1, keep=100, tensorboard=False)])
    graph_run.hang_grace_s = hang_grace_s
    return graph_run, asyncio.run(asyncio.wait_for(graph_run.execute(), 240))


def no_worker_left(run: GraphRun) -> bool:
    processes = [w.process for w in run.placement.workers.values() if w.process is not None]
    return bool(processes) and all(p.returncode is not None for p in processes) and not any(
        Path(f"/proc/{p.pid}").exists() and Path(f"/proc/{p.pid}/stat").read_text().split()[2] != "Z"
        for p in processes)


def assert_recent_complete_checkpoint(run_dir: Path, result: RunResult) -> None:
    """The newest checkpoint holds every node of both parts and is at most one update behind the run."""
    state = checkpoint.load(run_dir)
    assert "missing" not in state and {"env", "agent", "trainer"} <= set(state["nodes"])
    assert state["counters"]["iterations"] >= result.counters["iterations"] - 1 >= 1
    assert all(torch.isfinite(t).all() for t in state["nodes"]["trainer"]["learner"].values())


@pytest.mark.nodes  # the split Cartpole graph of the built-in node package
@pytest.mark.parametrize("mode", ["sync", pytest.param("async", marks=pytest.mark.slow)])
class TestSplitFaults:
    def test_raise(self, registry, tmp_path: Path, mode: str) -> None:
        run, result = run_faulty(registry, tmp_path, "raise", mode)
        assert result.stop_reason == "failed" and result.error is not None
        assert result.error.node_id == "fault"
        assert "in worker 'envs'" in str(result.error.cause) and "injected fault" in str(result.error.cause)
        assert no_worker_left(run)
        assert_recent_complete_checkpoint(tmp_path, result)

    @pytest.mark.slow
    @pytest.mark.parametrize("value", ["nan", "inf"])
    def test_non_finite_rewards(self, registry, tmp_path: Path, mode: str, value: str) -> None:
        run, result = run_faulty(registry, tmp_path, value, mode)
        assert result.stop_reason == "failed" and result.error is not None
        assert result.error.node_id == "trainer" and "non-finite" in str(result.error.cause)
        assert no_worker_left(run)
        assert_recent_complete_checkpoint(tmp_path, result)

    def test_await_forever(self, registry, tmp_path: Path, mode: str) -> None:
        """The worker's own hang watch reports the node awaiting forever, like a deadlock."""
        run, result = run_faulty(registry, tmp_path, "hang", mode, hang_grace_s=2.0)
        assert result.stop_reason == "failed" and result.error is not None
        assert result.error.node_id == "fault" and "in worker 'envs'" in str(result.error.cause)
        assert "fault awaits in compute" in str(result.error.cause)
        assert no_worker_left(run)
        assert_recent_complete_checkpoint(tmp_path, result)

    def test_exit(self, registry, tmp_path: Path, mode: str) -> None:
        """A node ending its process: the worker is named with its nodes and exit code."""
        run, result = run_faulty(registry, tmp_path, "exit", mode)
        assert result.stop_reason == "failed" and result.error is not None
        cause = str(result.error.cause)
        assert result.error.node_id == "envs" and "worker 'envs' (nodes " in cause and "fault" in cause
        assert "exit code 3" in cause
        assert no_worker_left(run)
        assert_recent_complete_checkpoint(tmp_path, result)


@pytest.mark.slow
def test_a_node_blocking_a_worker_s_loop_is_named_when_the_run_stops(tmp_path: Path) -> None:
    """A node in worker 'envs' blocks its event loop for an hour after 3 updates: --timeout stops the run, the
    worker, which cannot answer, is killed, and the failure names the node (noted by the worker's stall thread)
    and the worker; exit 1, no process left, the last checkpoint is the one of update 3."""
    document = faulty_graph(CARTPOLE, "block", 100)
    document["run"] = dict(document["run"], target_return=None)
    document["placement"] = PART
    graph = tmp_path / "block.json"
    graph.write_text(json.dumps(document))
    run_dir = tmp_path / "run"
    here = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=f"{here}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    main = subprocess.Popen([sys.executable, "-m", "dnne.runtime.cli", "run", str(graph), "--plugin", "fault_nodes",
                             "--run-dir", str(run_dir), "--timeout", "15s", "--checkpoint-every", "1", "-q"],
                            env=env, stderr=subprocess.PIPE, text=True)
    workers: set[int] = set()
    while main.poll() is None and not workers:
        workers = {int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) == main.pid}
    _, stderr = main.communicate(timeout=300)
    assert main.returncode == 1, stderr
    assert "Traceback" not in stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["error"]["node"] == "fault"
    assert "worker 'envs' did not stop within 30s: killed" in summary["error"]["cause"]
    assert "node 'fault' (Fault) is in compute" in summary["error"]["cause"]
    assert summary["last_checkpoint"].endswith("ckpt-00000003.pt")
    assert workers and not any(Path(f"/proc/{pid}").exists() for pid in workers)


def _parent(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None
