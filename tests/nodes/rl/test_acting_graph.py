"""The acting contract in a running graph: sync is exactly on-policy, async lag stays within max_staleness."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from dnne.nodes.rl.agent_node import PPOAgentNode
from dnne.nodes.types import PolicyOutput
from dnne.runtime import Input, Node, Output, default_registry, load_graph
from dnne.runtime.channel import LocalChannel
from dnne.runtime.runner import GraphRun, RunResult

ROOT = Path(__file__).resolve().parents[3]
CARTPOLE = ROOT / "graphs" / "cartpole_ppo.json"


class VersionProbe(Node):
    """Records (stamp, policy version) of every policy output it sees."""

    policy_output = Input("PolicyOutput")

    async def compute(self, policy_output: PolicyOutput) -> None:
        self.ctx.shared("versions", list).append((self.stamp, policy_output.version))


class TriggerProbe(Node):
    """Records (stamp, reason) of every trigger the trainer sends."""

    trigger = Input("Trigger")

    async def compute(self, trigger: Any) -> None:
        self.ctx.shared("triggers", list).append((self.stamp, trigger.reason))


class Lag(Node):
    """Passes rewards on 5 ms late, so the group behind it fills its rollouts after the others."""

    rewards = Input("Tensor")
    out = Output("Tensor")

    async def compute(self, rewards: torch.Tensor) -> dict[str, torch.Tensor]:
        await asyncio.sleep(0.005)
        return {"out": rewards}


class UpdateProbe(Node):
    """Records every update's loss_info."""

    info = Input("Dict")

    async def compute(self, info: dict[str, Any]) -> None:
        self.ctx.shared("updates", list).append(info)


def probed_run(iterations: int, placement: dict[str, str] | None = None, capacity: int | None = None,
               probe: dict[str, list] | None = None, fuse: bool = True,
               **trainer: Any) -> tuple[list[tuple[int, int]], list[dict[str, Any]], int]:
    """The Cartpole graph with probes on the agent's outputs and the trainer's loss_info (and its triggers, into
    ``probe["triggers"]`` when given); its horizon. ``capacity``: of every link into and out of the trainer;
    ``fuse``: ``run.fuse_chains``."""
    document = json.loads(CARTPOLE.read_text())
    document["run"]["fuse_chains"] = fuse
    if placement:
        document["placement"] = placement
    if capacity:
        document["links"] = [{"from": a, "to": b, "capacity": capacity} if "trainer" in (a[:7], b[:7]) else [a, b]
                             for a, b in document["links"]]
    document["nodes"]["trainer"]["params"].update(trainer)
    document["nodes"]["versions"] = {"type": "VersionProbe"}
    document["nodes"]["updates"] = {"type": "UpdateProbe"}
    document["links"] += [["agent.policy_output", "versions.policy_output"], ["trainer.loss_info", "updates.info"]]
    if probe is not None:
        document["nodes"]["triggers"] = {"type": "TriggerProbe"}
        document["links"].append({"from": "trainer.training_complete", "to": "triggers.trigger", "capacity": 1024})
    document["run"].update(max_iterations=iterations, max_steps=None, target_return=None, timeout="3m")
    registry = default_registry()
    registry.add_node(VersionProbe)
    registry.add_node(UpdateProbe)
    registry.add_node(TriggerProbe)
    graph = load_graph(document, registry=registry)
    assert any((l.src, l.src_port, l.dst, l.dst_port) == ("trainer", "weights", "agent", "weights")
               for l in graph.links)
    graph_run = GraphRun(graph, registry)
    result = asyncio.run(graph_run.execute())
    assert result.error is None, result.error
    shared = graph_run.context.shared
    if probe is not None:
        probe["triggers"] = shared("triggers", list)
        probe["warnings"] = result.warnings
    return shared("versions", list), shared("updates", list), document["nodes"]["trainer"]["params"]["horizon_length"]


def test_sync_rollout_r_acts_with_version_r() -> None:
    """In sync mode observation k is acted on by version k // horizon exactly, and every update reports lag 0."""
    versions, updates, horizon = probed_run(6)
    assert [stamp for stamp, _ in versions] == list(range(len(versions)))
    assert all(version == stamp // horizon for stamp, version in versions)
    assert max(version for _, version in versions) >= 5
    assert len(updates) == 6 and all(u["lag_max"] == 0 and u["lag_0"] == 1.0 for u in updates)


def test_the_agent_acts_in_its_producers_task_as_in_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent fires in the task of the node that sends it observations (``fire_ready``), acting and training
    exactly as when it fires in its own task (``fuse_chains: false``)."""
    tasks: list[str] = []
    serve = PPOAgentNode.serve

    async def recorded(self: PPOAgentNode, firings: list[Any]) -> None:
        tasks.append(asyncio.current_task().get_name())  # type: ignore[union-attr]
        await serve(self, firings)

    monkeypatch.setattr(PPOAgentNode, "serve", recorded)
    fused = probed_run(3)
    fused_tasks, tasks[:] = tasks[:], []
    plain = probed_run(3, fuse=False)
    (fused_versions, fused_updates, _), (versions, updates, _) = fused, plain
    assert fused_versions == versions and len(updates) == 3
    timing = {"update_time_s"}
    assert [{k: v for k, v in u.items() if k not in timing} for u in fused_updates] == \
        [{k: v for k, v in u.items() if k not in timing} for u in updates]
    assert set(tasks) == {"agent"}
    assert fused_tasks.count("agent") < len(fused_tasks) // 2


def test_an_agent_holding_observations_waits_for_weights_when_fired_by_its_producer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Fired in its producer's task on an observation that the weights held may not act on yet, the agent's own
    loop waits again naming the weights' channel (what the watchdog reports and its wait stats are charged to), as
    when it fires in its own task."""
    named: list[tuple[str, ...]] = []
    runs: list[GraphRun] = []

    def note_the_wait() -> None:
        """Whenever a message is sent: the agent's own loop, parked (not woken yet) while it holds observations and
        no producer fires it, names what it waits on."""
        agent = runs[-1].nodes.get("agent") if runs else None
        if agent is not None and agent.waiting and not agent.io.fusing and agent.io.activity.blocked_on:
            named.append(tuple(blocked.name for blocked in agent.io.activity.blocked_on))

    def watched(send: Any) -> Any:  # a message arrives by offer, or by put (through _append)
        def sending(self: LocalChannel, message: Any) -> Any:
            note_the_wait()
            return send(self, message)
        return sending

    monkeypatch.setattr(LocalChannel, "_append", watched(LocalChannel._append))
    monkeypatch.setattr(LocalChannel, "offer", watched(LocalChannel.offer))
    document = json.loads(CARTPOLE.read_text())
    document["run"].update(max_iterations=4, max_steps=None, target_return=None, timeout="2m")
    # room for a step more of policy outputs than the trainer holds: a full output would wake the agent's own loop
    # anyway (firing.fire_fused), which would hide a wait naming the wrong channels
    document["links"] = [{"from": link[0], "to": link[1], "capacity": 4}
                         if link == ["agent.policy_output", "trainer.policy_outputs"] else link
                         for link in document["links"]]
    registry = default_registry()
    runs.append(GraphRun(load_graph(document, registry=registry), registry))
    result = asyncio.run(runs[-1].execute())
    assert result.stop_reason == "max_iterations"
    assert len(named) >= 3 and all("trainer.weights -> agent.weights" in names for names in named), named


def test_learner_in_its_own_process() -> None:
    """With the trainer in a worker process, the agent still acts on observation k with version k // horizon
    (weights reach it only through its port), and training is the same as in one process."""
    alone_versions, alone_updates, _ = probed_run(4)
    versions, updates, horizon = probed_run(4, placement={"trainer": "learner"})
    common = min(len(versions), len(alone_versions))
    assert versions[:common] == alone_versions[:common] and max(version for _, version in versions[:common]) >= 3
    assert all(version == stamp // horizon for stamp, version in versions)
    fields = ("policy_loss", "value_loss", "approx_kl", "explained_variance")
    rows = [[u[f] for f in fields] for u in updates]
    assert len(rows) >= 3 and rows == [[u[f] for f in fields] for u in alone_updates][:len(rows)]


@pytest.mark.parametrize("max_staleness", [1, 2])
def test_async_lag_never_exceeds_max_staleness(max_staleness: int) -> None:
    """In async mode the version acting on rollout r is never more than max_staleness behind r, the trainer's
    lag statistics agree (max within the bound, fractions summing to 1), and acting runs ahead of the learner."""
    versions, updates, horizon = probed_run(8, mode="async", max_staleness=max_staleness)
    lags = [stamp // horizon - version for stamp, version in versions]
    assert min(lags) >= 0 and max(lags) <= max_staleness
    assert max(lags) >= 1  # acting went on beside an update
    assert len(updates) >= 6  # the last updates may finish after the stop
    for update in updates:
        assert 0 <= update["lag_mean"] <= update["lag_max"] <= max_staleness
        assert sum(update[f"lag_{k}"] for k in range(max_staleness + 1)) == pytest.approx(1.0)


@pytest.mark.parametrize(("capacity", "lead", "granted"), [(8, 6, 6), (None, 6, 3)])
def test_a_lead_lets_acting_run_ahead_by_unstamped_credits(capacity: int | None, lead: int, granted: int) -> None:
    """Async with ``lead``: the trainer's triggers carry no stamp (credits, not steps) and it hands out ``lead``
    extra ones once, clamped, with a warning, to what the links hold (capacity 2 into and out of the trainer: 3);
    the lag bound in versions still holds."""
    probe: dict[str, list] = {}
    versions, updates, horizon = probed_run(6, capacity=capacity, probe=probe, mode="async", lead=lead)
    triggers = probe["triggers"]
    assert all(stamp is None for stamp, _ in triggers)
    assert sum(reason == "start" for _, reason in triggers) == granted
    assert len(triggers) - granted >= 5 * horizon  # one per transition taken in besides
    clamped = [w for w in probe["warnings"] if "more than the links hold" in w]
    assert len(clamped) == (granted < lead) and (not clamped or f"acting leads by {granted}" in clamped[0])
    lags = [stamp // horizon - version for stamp, version in versions]
    assert min(lags) >= 0 and max(lags) <= 1 and len(updates) >= 5


def test_a_lead_stays_below_the_horizon() -> None:
    """A lead of a horizon or more is clamped to horizon - 1, with a warning: the steps a group sends ahead while
    the others fill must fit its next rollout."""
    probe: dict[str, list] = {}
    probed_run(3, capacity=16, probe=probe, mode="async", lead=10, horizon_length=4)
    assert sum(reason == "start" for _, reason in probe["triggers"]) == 3
    assert any("not below horizon_length 4: acting leads by 3" in w for w in probe["warnings"])


def lagged_two_groups(run: dict[str, Any]) -> tuple[GraphRun, RunResult]:
    """Two Cartpole groups of 4 envs, the second's rewards behind a ``Lag``, into one async trainer (lead 3,
    horizon 16): the run to ``run``'s stop and its result."""
    single = json.loads(CARTPOLE.read_text())
    nodes: dict[str, Any] = {"agent": single["nodes"]["agent"], "trainer": single["nodes"]["trainer"],
                             "lag": {"type": "Lag"}, "updates": {"type": "UpdateProbe"}}
    nodes["trainer"]["params"].update(mode="async", lead=3, horizon_length=16)
    links: list[Any] = [["agent.model", "trainer.model"], ["agent.policy_output", "trainer.policy_outputs"],
                        ["trainer.loss_info", "updates.info"]]
    for i in (1, 2):
        nodes.update({f"env{i}": {"type": "EnvNode", "params": dict(single["nodes"]["env"]["params"], num_envs=4)},
                      f"or{i}": {"type": "ORNode"}, f"action{i}": {"type": "ActionNode"},
                      f"step{i}": {"type": "StepNode"}})
        links += [[f"env{i}.observations", f"or{i}.input_a"], [f"step{i}.observations", f"or{i}.input_b"],
                  [f"or{i}.output", "agent.observations"],
                  {"from": "agent.policy_output", "to": f"action{i}.policy", "route": f"or{i}"},
                  [f"env{i}.env_handle", f"action{i}.env_handle"], [f"env{i}.env_handle", f"step{i}.env_handle"],
                  [f"action{i}.action", f"step{i}.actions"], [f"step{i}.observations", "trainer.states"],
                  [f"step{i}.dones", "trainer.dones"],
                  {"from": "trainer.training_complete", "to": f"step{i}.trigger", "route": f"or{i}"}]
    links += [["step1.rewards", "trainer.rewards"], ["step2.rewards", "lag.rewards"], ["lag.out", "trainer.rewards"]]
    document = {"format": "dnne-graph", "version": 1, "nodes": nodes, "links": links,
                "run": {"seed": 1, "device": "cpu", "timeout": "3m", **run}}
    registry = default_registry()
    registry.add_node(Lag)
    registry.add_node(UpdateProbe)
    graph_run = GraphRun(load_graph(document, registry=registry), registry)
    return graph_run, asyncio.run(graph_run.execute())


def test_a_group_ahead_on_its_lead_starts_its_next_rollout_while_the_others_fill() -> None:
    """Two env groups, one behind a lag: the other fills its rollout first and, on its lead, sends steps beyond it
    (before: an index error past the horizon). Those steps open its next rollout, so every update trains on two
    full rollouts and the run goes on."""
    graph_run, result = lagged_two_groups({"max_iterations": 6})
    assert result.error is None, result.error
    assert result.counters["iterations"] == 6
    assert len(graph_run.context.shared("updates", list)) >= 5  # the last may finish at teardown, unreported


def test_an_async_linear_schedule_counts_the_steps_trained_on() -> None:
    """Async, acting goes on during an update (here on a lead of 3 and with one group late), so the env-step
    counter at an update's end depends on timing; the linear schedule's learning rate after update k is
    lr0 * (1 - k * rollout / max_steps) all the same (rollout: 16 steps x 8 envs)."""
    graph_run, result = lagged_two_groups({"max_steps": 1280})
    assert result.error is None, result.error
    updates = graph_run.context.shared("updates", list)
    assert len(updates) >= 5
    base = json.loads(CARTPOLE.read_text())["nodes"]["agent"]["params"]["learning_rate"]
    for info in updates:
        assert info["learning_rate"] == base * (1.0 - info["iteration"] * 128 / 1280)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback where CUDA is missing")
def test_learner_device_falls_back_to_cpu() -> None:
    """trainer.device=cuda on a machine without CUDA trains on the CPU, with a warning naming the device."""
    document = json.loads(CARTPOLE.read_text())
    document["nodes"]["trainer"]["params"]["device"] = "cuda"
    document["run"].update(max_iterations=2, max_steps=None, target_return=None)
    graph_run = GraphRun(load_graph(document))
    result = asyncio.run(graph_run.execute())
    assert result.error is None and result.counters["iterations"] == 2
    assert any("device cuda is not available here" in warning for warning in result.warnings)
    assert graph_run.nodes["trainer"].learner.device == torch.device("cpu")
