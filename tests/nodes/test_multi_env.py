"""Multi-environment PPO: one agent serving several env groups, actions routed back to their group."""
from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

from dnne.nodes.types import PolicyWeights
from dnne.runtime import Input, Node, Output, Param, default_registry, load_graph, run
from dnne.runtime.registry import NodeRegistry

ROOT = Path(__file__).resolve().parents[2]


class JitterNode(Node):
    """Passes actions on after a random delay, so groups answer at different speeds; records batch sizes."""

    action = Input("Tensor")
    delayed = Output("Tensor")
    max_delay_ms = Param(float, 2.0, ge=0.0, le=1000.0)

    async def compute(self, action: torch.Tensor) -> Mapping[str, Any]:
        await asyncio.sleep(random.Random(self.firings).uniform(0, self.max_delay_ms) / 1000)
        self.ctx.shared("sizes", dict).setdefault(self.id, set()).add(action.shape[0])
        return {"delayed": action}


def jittered_graph(sizes: tuple[int, ...], delays: tuple[float, ...]) -> dict[str, Any]:
    """The multi-env graph with groups of the given sizes and a jitter node before each step node."""
    graph = load_graph(ROOT / "graphs" / "multi_env_ppo.json", registry=default_registry()).to_native()
    for i, (size, delay) in enumerate(zip(sizes, delays), start=1):
        graph["nodes"][f"env{i}"]["params"]["num_envs"] = size
        graph["nodes"][f"jitter{i}"] = {"type": "JitterNode", "params": {"max_delay_ms": delay}}
        graph["links"].remove([f"action{i}.action", f"step{i}.actions"])
        graph["links"] += [[f"action{i}.action", f"jitter{i}.action"], [f"jitter{i}.delayed", f"step{i}.actions"]]
    graph["nodes"]["trainer"]["params"].update(horizon_length=8, epochs=2)
    graph["run"].update(max_steps=6 * 8 * sum(sizes), target_return=None)
    return graph


class TestMultiEnv:
    def test_actions_reach_their_group_at_different_speeds(self) -> None:
        """With groups of 3, 2 and 1 envs answering at different speeds, every step node only ever gets actions of
        its own batch size, the trainer's stamp joins never disagree, and the run ends on max_steps."""
        registry = default_registry()
        registry.add_node(JitterNode)
        graph = load_graph(jittered_graph((3, 2, 1), (0.0, 3.0, 8.0)), registry=registry)
        from dnne.runtime.runner import GraphRun

        graph_run = GraphRun(graph, registry)
        result = asyncio.run(graph_run.execute())
        assert result.error is None, result.error
        assert result.stop_reason == "max_steps"
        sizes = graph_run.context.shared("sizes", dict)
        assert sizes == {"jitter1": {3}, "jitter2": {2}, "jitter3": {1}}
        assert result.counters["iterations"] >= 5

    def test_trainer_updates_once_per_round_of_horizons(self) -> None:
        """Sync updates wait for every group's horizon: after 5 updates each group took exactly 5 horizons of
        steps (the triggers of the next round are still held)."""
        registry = default_registry()
        registry.add_node(JitterNode)
        document = jittered_graph((2, 2, 1), (1.0, 0.0, 2.0))
        document["run"].update(max_steps=None, max_iterations=5)
        result = asyncio.run(run(load_graph(document, registry=registry), registry))
        assert result.stop_reason == "max_iterations"
        assert result.counters["env_steps"] == 5 * 8 * (2 + 2 + 1)

    def test_agent_batches_waiting_groups(self) -> None:
        """The agent serves the observations of several groups in fewer forward passes than observations, and
        serves every observation it received before the stop."""
        graph = load_graph(ROOT / "graphs" / "multi_env_ppo.json",
                           overrides=["run.target_return=null", "run.max_steps=2048"])
        from dnne.runtime.runner import GraphRun

        graph_run = GraphRun(graph)
        result = asyncio.run(graph_run.execute())
        assert result.error is None
        channel_messages = sum(stats["messages"] for name, stats in result.channels.items()
                               if name.endswith("agent.observations"))
        agent = graph_run.nodes["agent"]
        assert channel_messages - 3 <= agent.firings <= channel_messages
        assert agent.forward_passes < agent.firings


class LossInfoProbe(Node):
    """Keeps every update's ``loss_info``."""

    info = Input("Dict")

    async def compute(self, info: dict[str, Any]) -> None:
        self.ctx.shared("loss_info", list).append(info)


class WeightsProbe(Node):
    """Keeps a copy of every version of the weights it is sent."""

    weights = Input("PolicyWeights")

    async def compute(self, weights: PolicyWeights) -> None:
        copies = {name: tensor.clone() for name, tensor in weights.parameters.items()}
        self.ctx.shared("published", dict)[weights.version] = copies


def probed_registry() -> NodeRegistry:
    """The default registry with the two probes."""
    registry = default_registry()
    registry.add_node(LossInfoProbe)
    registry.add_node(WeightsProbe)
    return registry


def holds_published(held: dict[str, torch.Tensor], version: int, published: dict[int, dict[str, Any]]) -> bool:
    """Whether ``held`` are exactly the weights the trainer published as ``version``."""
    return held.keys() == published[version].keys() and all(
        torch.equal(held[name], published[version][name]) for name in held)


def two_agent_graph() -> dict[str, Any]:
    """The multi-env graph with a second agent serving groups 2 and 3 (the first keeps group 1), both giving their
    decisions to the one trainer; the second takes the trainer's weights through an explicit link."""
    graph = load_graph(ROOT / "graphs" / "multi_env_ppo.json", registry=default_registry()).to_native()
    graph["nodes"]["agent2"] = graph["nodes"]["agent"]
    links = []
    for link in graph["links"]:
        text = json.dumps(link)
        if any(f'{node}{i}' in text for node in ("or", "action") for i in (2, 3)):
            text = text.replace('"agent.', '"agent2.')
        links.append(json.loads(text))
    graph["links"] = links + [["agent2.policy_output", "trainer.policy_outputs"],
                              {"from": "trainer.weights", "to": "agent2.weights", "policy": "latest"},
                              ["trainer.loss_info", "probe.info"], ["trainer.weights", "weights_probe.weights"]]
    graph["nodes"]["probe"] = {"type": "LossInfoProbe"}
    graph["nodes"]["weights_probe"] = {"type": "WeightsProbe"}
    graph["nodes"]["trainer"]["params"].update(horizon_length=8, epochs=2)
    graph["run"].update(max_steps=None, max_iterations=5, target_return=None)
    return graph


class TestSeveralAgents:
    def test_agents_serving_some_groups_each_share_one_trainer(self) -> None:
        """Two agents, each serving its own groups, feed one trainer: sync updates still wait for every group's
        horizon, both agents act, every transition was acted with the version of its rollout (lag 0), and each
        agent ends holding exactly the weights the trainer published as the version it holds."""
        from dnne.runtime.runner import GraphRun

        registry = probed_registry()
        graph_run = GraphRun(load_graph(two_agent_graph(), registry=registry), registry)
        result = asyncio.run(graph_run.execute())
        assert result.error is None, result.error
        assert result.stop_reason == "max_iterations"
        assert result.counters["env_steps"] == 5 * 8 * (4 + 2 + 2)
        agents = [graph_run.nodes["agent"], graph_run.nodes["agent2"]]
        assert all(agent.forward_passes > 0 for agent in agents)
        updates = graph_run.context.shared("loss_info", list)
        assert [info["iteration"] for info in updates] == [1, 2, 3, 4, 5]
        assert all(info["lag_max"] == 0 for info in updates)
        published = graph_run.context.shared("published", dict)
        for agent in agents:
            assert agent.version >= 4  # the last version may come after the stop
            assert holds_published(agent.network.state_dict(), agent.version, published)

    def test_an_agent_in_a_worker_process_acts_with_the_trainer_s_weights(self, tmp_path: Path) -> None:
        """The second agent and its groups in a worker process (the learner and the probes in the main one): every
        update is still exactly on-policy (lag 0), and the checkpoint taken at the end holds both agents, each with
        exactly the weights the trainer published as the version it holds."""
        from dnne.runtime import checkpoint
        from dnne.runtime.rundir import RunDirectory
        from dnne.runtime.runner import GraphRun

        graph = two_agent_graph()
        graph["placement"] = {node: "actors" for node in ("agent2", "env2", "or2", "action2", "step2", "env3", "or3",
                                                          "action3", "step3")}
        graph["workers"] = {"actors": {}}
        registry = probed_registry()
        graph_run = GraphRun(load_graph(graph, registry=registry), registry, run_dir=tmp_path,
                             hooks=[RunDirectory(tmp_path, tensorboard=False, checkpoint_interval_s=None)])
        result = asyncio.run(graph_run.execute())
        assert result.error is None and result.stop_reason == "max_iterations", result.error
        assert result.counters["env_steps"] == 5 * 8 * (4 + 2 + 2)
        updates = graph_run.context.shared("loss_info", list)
        assert [info["iteration"] for info in updates] == [1, 2, 3, 4, 5]
        assert all(info["lag_max"] == 0 for info in updates)
        published = graph_run.context.shared("published", dict)
        nodes = checkpoint.load(tmp_path)["nodes"]
        for name in ("agent", "agent2"):
            assert nodes[name]["version"] >= 4
            assert holds_published(nodes[name]["model"], nodes[name]["version"], published)


@pytest.mark.parametrize("name", ["multi_env_ppo_procs.json", "halfcheetah_async.json"])
def test_the_shipped_split_graphs_run_the_learner_in_a_process_of_its_own(name: str) -> None:
    """Issue 9's layout: the trainer is the only node of its worker (the rest there is the crossing links' proxies),
    and the agent acts in another process."""
    from dnne.runtime.placement.split import split_graph

    registry = default_registry()
    parts = split_graph(load_graph(ROOT / "graphs" / name, registry=registry), registry).graphs
    learners = [part for part in parts.values() if "trainer" in part.nodes]
    assert len(learners) == 1
    assert {node for node, spec in learners[0].nodes.items() if not spec.type.startswith("_dnne_remote_")} == {
        "trainer"}
    assert "agent" not in learners[0].nodes


class TestPatternGraphsSolve:
    @pytest.mark.slow
    @pytest.mark.parametrize("name", ["multi_env_ppo.json", "multi_env_ppo_procs.json"])
    def test_solves_with_seed_1(self, name: str, tmp_path: Path) -> None:
        """The shipped multi-environment graph (one process, and each group and the learner in its own process)
        solves Cartpole with --seed 1: summary.json says solved (performance is measured in benchmarks/, not
        asserted here)."""
        from dnne.runtime.cli import main

        code = main(["run", str(ROOT / "graphs" / name), "--seed", "1", "--run-dir", str(tmp_path), "-q"])
        summary = json.loads((tmp_path / "summary.json").read_text())
        assert code == 0 and summary["solved"] and summary["stop_reason"] == "target_return"
