"""Recurrent agents in running graphs: several env groups served with a state each, async mode with its lag kept at
1, the state checkpointed, and a clear error when the agent cannot see episode ends."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from dnne.nodes.rl.actor_critic import ActorCritic
from dnne.runtime import Input, Node, default_registry, load_graph
from dnne.runtime import checkpoint
from dnne.runtime.cli import main
from dnne.runtime.runner import GraphRun

ROOT = Path(__file__).resolve().parents[3]
NOVEL = ROOT / "graphs" / "cartpole_novel_lstm.json"
MULTI = ROOT / "graphs" / "multi_env_ppo.json"


class UpdateProbe(Node):
    """Records every update's loss_info."""

    info = Input("Dict")

    async def compute(self, info: dict[str, Any]) -> None:
        self.ctx.shared("updates", list).append(info)


def run_document(document: dict[str, Any]) -> tuple[GraphRun, list[dict[str, Any]]]:
    """Run a graph document with a probe on the trainer's loss_info; the run and the updates' statistics."""
    document["nodes"]["updates"] = {"type": "UpdateProbe"}
    document["links"].append(["trainer.loss_info", "updates.info"])
    registry = default_registry()
    registry.add_node(UpdateProbe)
    graph_run = GraphRun(load_graph(document, registry=registry), registry)
    result = asyncio.run(graph_run.execute())
    assert result.error is None, result.error
    return graph_run, graph_run.context.shared("updates", list)


def test_each_env_group_keeps_its_own_state() -> None:
    """Three env groups of 4, 2 and 2 envs through one recurrent agent: before the first step of the first update
    the learner's rebuilt log-probs equal the behaviour's (approx KL 0, nothing clipped) over every group."""
    document = load_graph(MULTI, registry=default_registry()).to_native()  # its env group expanded: env1, ...
    document["nodes"]["agent"]["params"].update(recurrent="gru", recurrent_size=16)
    document["nodes"]["trainer"]["params"].update(epochs=1, minibatch_size=1 << 20, seq_length=8,
                                                  lr_schedule="constant")
    for group in ("1", "2", "3"):
        document["nodes"][f"env{group}"]["params"]["task"] = "CartpoleNoVel"
        document["links"].append([f"step{group}.dones", "agent.dones"])
    document["run"].update(max_iterations=2, max_steps=None, target_return=None, timeout="3m")
    graph_run, updates = run_document(document)
    assert updates[0]["approx_kl"] < 1e-10 and updates[0]["clip_fraction"] == 0.0
    states = graph_run.nodes["agent"].state_dict()["recurrent_states"]
    assert {source: tuple(state.shape) for source, state in states.items()} == {
        "or1": (4, 16), "or2": (2, 16), "or3": (2, 16)}


def test_async_recurrent_agent_lags_at_most_one_version() -> None:
    document = json.loads(NOVEL.read_text())
    document["nodes"]["trainer"]["params"].update(mode="async", max_staleness=3, epochs=2, vtrace_rho_clip=1.0)
    document["run"].update(max_iterations=4, max_steps=None, target_return=None, timeout="3m")
    graph_run, updates = run_document(document)
    assert len(updates) >= 3
    assert max(u["lag_max"] for u in updates) <= 1
    assert all(0.0 < u["rho_mean"] <= 1.0 for u in updates)  # V-trace re-evaluated the sequences of stale steps
    assert any("kept at 1" in warning for warning in graph_run.context.warnings)


def test_agent_state_round_trips_through_its_checkpoint() -> None:
    document = json.loads(NOVEL.read_text())
    document["run"].update(max_iterations=1, max_steps=None, target_return=None, timeout="3m")
    graph_run, _ = run_document(document)
    agent = graph_run.nodes["agent"]
    state = agent.state_dict()
    saved = state["recurrent_states"]["or"]
    assert saved.shape == (8, 2 * 64) and saved.abs().sum() > 0
    agent.states.clear()
    agent.load_state_dict(state)
    assert torch.equal(agent.states["or"], saved)


def test_recurrent_agent_without_dones_is_bad_input(tmp_path: Path) -> None:
    document = json.loads(NOVEL.read_text())
    document["links"].remove(["step.dones", "agent.dones"])
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(document))
    done = subprocess.run([sys.executable, "-m", "dnne.runtime.cli", "run", str(path), "--run-dir",
                           str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "'dones' is not linked" in done.stderr and "Traceback" not in done.stderr


def test_export_of_a_recurrent_agent_takes_and_returns_the_state(tmp_path: Path) -> None:
    """``dnne export`` of a trained recurrent graph writes a module ``(observations, state) -> (actions, state)``
    that acts as the agent's network does, deterministically."""
    run_dir = tmp_path / "run"
    assert main(["run", str(NOVEL), "--run-dir", str(run_dir), "--set", "run.max_iterations=1",
                 "--set", "run.target_return=null"]) == 0
    out = tmp_path / "policy.pt2"
    assert main(["export", str(run_dir), "-o", str(out), "--no-onnx"]) == 0
    module = torch.export.load(str(out)).module()
    agent_state = checkpoint.load(run_dir)["nodes"]["agent"]
    assert agent_state["recurrent_states"]["or"].shape == (8, 2 * 64)
    document = json.loads(NOVEL.read_text())["nodes"]["agent"]["params"]
    network = ActorCritic(2, 2, document["hidden_sizes"], document["activation"], "discrete", normalize_input=True,
                          recurrent="lstm", recurrent_size=document["recurrent_size"])
    network.load_weights(agent_state["model"])
    obs, state = torch.randn(5, 2), network.initial_state(5)
    for _ in range(3):
        actions, next_state = module(obs, state)
        params, _, expected_state = network.step(network.normalize_obs(obs), state)
        assert torch.equal(actions, params["logits"].argmax(dim=-1))
        torch.testing.assert_close(next_state, expected_state)
        state = next_state
