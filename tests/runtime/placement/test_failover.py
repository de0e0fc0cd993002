"""Failover with worker processes: a lost part marked ``on_loss: replace`` is replaced and the run goes on from
its newest consistent state, ending exactly as an unfaulted run; a part that is not replaceable (the learner) stops
the run naming it, with a complete checkpoint to resume from; the limit and the ``on_loss`` values are checked."""
from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from dnne.runtime import checkpoint
from dnne.runtime.errors import GraphError
from dnne.runtime.graph import Graph
from dnne.runtime.loading import load_graph
from dnne.runtime.placement import heartbeat
from dnne.runtime.rundir import RunDirectory
from dnne.runtime.runner import GraphRun, RunResult

CARTPOLE = Path(__file__).parents[3] / "graphs" / "cartpole_ppo.json"
ENV_GROUP = ("env", "or", "action", "step")
TRAINING_FIELDS = ("iteration", "env_steps", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction",
                   "explained_variance", "learning_rate", "mean_return")


@pytest.fixture(scope="module")
def registry(builtin_registry):
    """Every installed node package (through conftest's ``builtin_registry``: these tests are marked ``nodes``)."""
    return builtin_registry


def cartpole(iterations: int, placement: dict[str, str], workers: dict[str, Any]) -> dict[str, Any]:
    document = json.loads(CARTPOLE.read_text())
    document["placement"], document["workers"] = placement, workers
    document["run"].update(max_iterations=iterations, target_return=None)
    return document


def run_in(run_dir: Path, document: dict[str, Any], registry, every: int,
           kill: tuple[str, int] | None = None) -> tuple[GraphRun, RunResult, list[int]]:
    """Run ``document`` with a run directory (a checkpoint every ``every`` updates); ``kill``: SIGKILL worker
    NAME's process once ``iterations`` reaches N and, with checkpoints on, the first one is on disk (a split run
    gathers it from every process after the point it was asked at). Returns the run, its result and the pids
    killed."""
    directory = RunDirectory(run_dir, every, tensorboard=False, checkpoint_interval_s=None)
    run = GraphRun(load_graph(document, registry=registry), registry, run_dir=run_dir, hooks=[directory])
    killed: list[int] = []

    async def scenario() -> RunResult:
        task = asyncio.ensure_future(run.execute())
        if kill is not None:
            name, at = kill
            while (run.counters.get("iterations", 0) < at or (every and directory.last_checkpoint is None)) \
                    and not task.done():
                await asyncio.sleep(0.005)
            assert not task.done(), f"the run ended before worker {name!r} could be killed: {task.result()}"
            killed.append(run.placement.workers[name].process.pid)
            os.kill(killed[0], signal.SIGKILL)
        return await asyncio.wait_for(task, 240)

    return run, asyncio.run(scenario()), killed


def rows(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def training(run_dir: Path) -> list[tuple]:
    return [tuple(row.get(field) for field in TRAINING_FIELDS) for row in rows(run_dir) if "iteration" in row]


@pytest.fixture(scope="module")
def unfaulted(registry, tmp_path_factory) -> tuple[Path, RunResult]:
    """The reference: the same graph and seed in one process, 4 updates (a split run is deterministic and logs
    what the one-process run logs)."""
    run_dir = tmp_path_factory.mktemp("runs") / "alone"
    _, result, _ = run_in(run_dir, cartpole(4, {}, {}), registry, 0)
    assert result.stop_reason == "max_iterations", result.error
    return run_dir, result


@pytest.mark.parametrize("every, kill_at, resumed", [
    pytest.param(2, 3, "ckpt-00000002.pt", id="after-a-snapshot"),
    pytest.param(0, 1, None, id="before-any-snapshot", marks=pytest.mark.slow),  # 25 s on the 2-core machine
])
def test_a_killed_replaceable_env_group_is_replaced_and_the_run_ends_as_an_unfaulted_one(
        registry, unfaulted, tmp_path, every, kill_at, resumed):
    """kill -9 of the env group's process after update ``kill_at``: the loss is recorded (where it ran, how long
    since its last beat), a new process runs the group from the newest consistent snapshot (or from the start,
    before the first), and every logged update and counter equals the unfaulted run's; only the wall time and the
    events differ."""
    placement = {node_id: "envs" for node_id in ENV_GROUP}
    run, result, [pid] = run_in(tmp_path, cartpole(4, placement, {"envs": {"on_loss": "replace"}}), registry, every,
                                kill=("envs", kill_at))
    alone_dir, alone = unfaulted
    assert result.stop_reason == "max_iterations" and result.error is None, result.error
    assert training(tmp_path) == training(alone_dir)
    same = {name: value for name, value in result.counters.items() if name != "wall_time_s"}
    assert same == {name: value for name, value in alone.counters.items() if name != "wall_time_s"}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["stop_reason"] == "max_iterations" and summary["error"] is None
    died, replaced = summary["placement"]["events"]
    assert died["event"] == "worker_died" and died["worker"] == "envs" and died["where"]["pid"] == pid
    assert 0 <= died["silent_s"] < 1.0  # found at most that long after its last beat
    new_pid = run.placement.workers["envs"].process.pid
    assert replaced["event"] == "worker_replaced" and replaced["where"]["pid"] == new_pid != pid
    assert replaced["lost"]["where"]["pid"] == pid and replaced["lost"]["replacement"] == 1
    origin = replaced["lost"]["resumed_from"]
    if resumed is None:
        assert origin == {"checkpoint": None, "counters": {}}
    else:
        assert Path(origin["checkpoint"]).name == resumed and origin["counters"]["iterations"] == every
    assert summary["placement"]["workers"]["envs"]["pid"] == new_pid
    [row] = [row for row in rows(tmp_path) if "worker_replaced" in row]
    assert row["node"] == "envs" and row["replacements"] == 1 and row["silent_s"] == died["silent_s"]
    assert any("replacing it (1 of run.max_replacements 3)" in warning for warning in summary["warnings"])


@pytest.mark.slow  # two Cartpole runs with two workers (30 s on the 2-core machine)
def test_a_lost_learner_stops_the_run_naming_it_with_a_checkpoint_to_resume(registry, unfaulted, tmp_path):
    """The trainer in worker 'learner' (on_loss: stop, the default), the env group replaceable: kill -9 of the
    learner stops the run naming it, with its last checkpoint and the resume command; that checkpoint holds every
    part's nodes and resuming from it ends as the unfaulted run."""
    placement = {node_id: "envs" for node_id in ENV_GROUP} | {"trainer": "learner"}
    document = cartpole(4, placement, {"envs": {"on_loss": "replace"}, "learner": {}})
    _, result, _killed = run_in(tmp_path, document, registry, 2, kill=("learner", 3))
    assert result.stop_reason == "failed" and result.error.node_id == "learner"
    text = str(result.error)
    assert f"worker 'learner' (nodes trainer) died: exit code -9 (SIGKILL); last checkpoint: {tmp_path}" in text
    assert f"resume it with: dnne run --resume {tmp_path}" in text
    assert [event["event"] for event in result.placement["events"]] == ["worker_died"]
    saved = checkpoint.load(tmp_path)
    assert "missing" not in saved and {"env", "agent", "trainer"} <= set(saved["nodes"])
    assert f"last checkpoint: {checkpoint.latest(tmp_path / 'checkpoints')} -- the run stops" in text
    assert saved["counters"]["iterations"] >= 2  # the update the learner's snapshot was taken at
    directory = RunDirectory(tmp_path, 0, tensorboard=False, checkpoint_interval_s=None)
    resumed = GraphRun(load_graph(document, registry=registry), registry, run_dir=tmp_path, hooks=[directory],
                       restore=saved)
    final = asyncio.run(asyncio.wait_for(resumed.execute(), 240))
    assert final.stop_reason == "max_iterations"
    assert final.counters["env_steps"] == unfaulted[1].counters["env_steps"]
    # the updates after the checkpoint (the row of the checkpoint's own update may have died with the learner)
    after = saved["counters"]["iterations"]
    assert [r for r in training(tmp_path) if r[0] > after] == [r for r in training(unfaulted[0]) if r[0] > after]


def forever(on_loss: dict[str, Any], **run: Any) -> Graph:
    g = (Graph().add("c", "Forever", delay=0.005).add("p", "Pid").add("s", "Sink")
         .link("c.out", "p.x").link("p.y", "s.x"))
    g.placement = {"c": "w1", "p": "w1"}
    g.workers = {"w1": on_loss}
    g.run.update(run)
    return g


@pytest.mark.slow  # a worker start and a kill (10 s on the 2-core machine)
def test_past_max_replacements_a_loss_stops_the_run_saying_so(wreg):
    run = GraphRun(load_graph(forever({"on_loss": "replace"}, max_replacements=0), registry=wreg), wreg)

    async def scenario() -> RunResult:
        task = asyncio.ensure_future(run.execute())
        while "s" not in run.nodes or len(run.nodes["s"].received) < 50:
            assert not task.done(), task.result().error
            await asyncio.sleep(0.02)
        os.kill(run.placement.workers["w1"].process.pid, signal.SIGKILL)
        return await asyncio.wait_for(task, 60)

    result = asyncio.run(scenario())
    assert result.stop_reason == "failed" and result.error.node_id == "w1"
    assert "(a replaceable part, but the run has replaced 0 lost part(s), run.max_replacements)" in str(result.error)
    assert [event["event"] for event in result.placement["events"]] == ["worker_died"]


@pytest.mark.slow  # two worker starts and the heartbeat's timeout (20 s on the 2-core machine)
def test_a_stopped_replaceable_worker_is_lost_by_its_heartbeat_and_replaced(wreg):
    """SIGSTOP: the heartbeat finds the part lost within its timeout, the stopped process is killed, a new one
    runs the part and the run ends at its own limit; the new part's pid is where the summary says it ran."""
    run = GraphRun(load_graph(forever({"on_loss": "replace"}, timeout="20s"), registry=wreg), wreg)
    stopped: list[int] = []

    async def scenario() -> RunResult:
        task = asyncio.ensure_future(run.execute())
        while "s" not in run.nodes or len(run.nodes["s"].received) < 50:
            assert not task.done(), task.result().error
            await asyncio.sleep(0.02)
        stopped.append(run.placement.workers["w1"].process.pid)
        os.kill(stopped[0], signal.SIGSTOP)
        while run.replacements == 0 or "s" not in run.nodes or len(run.nodes["s"].received) < 50:
            assert not task.done(), task.result().error
            await asyncio.sleep(0.02)
        run.request_stop("stop")
        return await asyncio.wait_for(task, 60)

    result = asyncio.run(scenario())
    assert result.stop_reason == "stop" and result.error is None
    lost, replaced = result.placement["events"]
    assert lost["event"] == "worker_lost" and heartbeat.TIMEOUT_S <= lost["silent_s"] < 1.0
    assert lost["where"]["pid"] == stopped[0] and replaced["where"]["pid"] != stopped[0]
    assert result.placement["workers"]["w1"]["pid"] == replaced["where"]["pid"]


@pytest.mark.parametrize("value", ["restart", 1, None])
def test_on_loss_is_stop_or_replace(wreg, value):
    with pytest.raises(GraphError) as caught:
        load_graph(forever({"on_loss": value}), registry=wreg)
    [issue] = caught.value.issues
    assert issue.code == "bad_on_loss" and issue.where == "/workers/w1/on_loss"
    assert "stop" in issue.message and "replace" in issue.message


def test_max_replacements_is_a_count(wreg):
    with pytest.raises(GraphError) as caught:
        load_graph(forever({"on_loss": "replace"}, max_replacements=-1), registry=wreg)
    assert [issue.where for issue in caught.value.issues] == ["/run/max_replacements"]
