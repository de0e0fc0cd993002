"""Recurrent PPO: the learner rebuilds exactly the rollout's log-probs and values from the states the agent sent,
with episode ends inside sequences and at chunk boundaries; state resets, checkpoints and the exported module."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from dnne.nodes.rl.actor_critic import ActorCritic
from dnne.nodes.rl.learner import Learner
from dnne.nodes.rl.ppo import PPOConfig
from dnne.nodes.rl.recurrent import RecurrentCore
from dnne.nodes.rl.trajectory import Trajectory
from dnne.nodes.types import Dones, ModelSpec, PolicyOutput
from dnne.runtime import Input, Node, default_registry, load_graph
from dnne.runtime.runner import GraphRun

ROOT = Path(__file__).resolve().parents[3]
GRAPH = ROOT / "graphs" / "cartpole_novel_lstm.json"
HORIZON, SEQ, EPISODE = 48, 8, 12  # truncations at steps 11 and 35 fall inside chunks, 23 ends chunk 2


class Recorder(Node):
    """Records every policy output or dones bundle with its stamp, and the model message."""

    policy_output = Input("PolicyOutput", optional=True)
    dones = Input("Dones", optional=True)
    model = Input("Model", optional=True, config=False)

    async def compute(self, policy_output: Any = None, dones: Any = None, model: Any = None) -> None:
        shared = self.ctx.shared("recorded", dict)
        if policy_output is not None:
            shared.setdefault("outputs", []).append((self.stamp, policy_output))
        if dones is not None:
            shared.setdefault("dones", []).append((self.stamp, dones))
        if model is not None:
            shared["model"] = model


def recorded_rollout(kind: str) -> dict[str, Any]:
    """One rollout of the shipped recurrent graph with ``kind`` as its core, short episodes, and recorders on the
    agent's outputs, the step node's dones and the model message."""
    document = json.loads(GRAPH.read_text())
    document["nodes"]["env"]["params"]["env_kwargs"] = {"max_episode_steps": EPISODE}
    document["nodes"]["agent"]["params"].update(recurrent=kind, recurrent_layers=2, recurrent_size=16)
    document["nodes"]["trainer"]["params"].update(horizon_length=HORIZON, seq_length=SEQ)
    for name, port in (("outputs", "policy_output"), ("ends", "dones"), ("models", "model")):
        document["nodes"][name] = {"type": "Recorder"}
        source = "step.dones" if port == "dones" else f"agent.{port}"
        document["links"].append([source, f"{name}.{port}"])
    document["run"].update(max_iterations=1, max_steps=None, target_return=None, timeout="2m")
    registry = default_registry()
    registry.add_node(Recorder)
    graph_run = GraphRun(load_graph(document, registry=registry), registry)
    result = asyncio.run(graph_run.execute())
    assert result.error is None, result.error
    return graph_run.context.shared("recorded", dict)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_learner_rebuilds_the_rollouts_log_probs_and_values(kind: str) -> None:
    recorded = recorded_rollout(kind)
    outputs = [o for stamp, o in sorted(recorded["outputs"], key=lambda x: x[0]) if stamp < HORIZON]
    dones = {stamp: d for stamp, d in recorded["dones"]}
    assert len(outputs) == HORIZON
    ends = torch.stack([dones[t + 1].as_tensor() for t in range(HORIZON)])
    # the cases the test is about: episode ends inside chunks, and on a chunk's last step before another chunk
    steps = torch.arange(HORIZON)
    assert ends[steps % SEQ != SEQ - 1].any()
    assert ends[(steps % SEQ == SEQ - 1) & (steps < HORIZON - 1)].any()
    # the agent zeroed the state it acted with exactly where the previous step ended an episode
    states = torch.stack([o.state for o in outputs])
    assert torch.equal(states[1:][ends[:-1]], torch.zeros_like(states[1:][ends[:-1]]))
    assert (states[1:][~ends[:-1]].abs().sum(dim=-1) > 0).all()

    learner = Learner(recorded["model"], False, torch.device("cpu"), 1e-3,
                      PPOConfig(epochs=1, minibatch_size=64, seq_length=SEQ), torch.Generator().manual_seed(0))
    trajectory = Trajectory(HORIZON, outputs[0], torch.device("cpu"))
    for t, output in enumerate(outputs):
        done = dones[t + 1]
        trajectory.add(output, torch.ones(output.value.shape), done, done.final_observations)
    sampler = learner.sampler(trajectory.buffer, [trajectory])
    assert sampler is not None
    with torch.no_grad():
        rows, log_prob, _, value = sampler.evaluate(learner.network, torch.arange(sampler.num_chunks))
    assert torch.equal(rows.sort().values, torch.arange(HORIZON * trajectory.num_envs))
    expected_log_prob = torch.stack([o.log_prob for o in outputs]).flatten()[rows]
    expected_value = torch.stack([o.value for o in outputs]).flatten()[rows]
    torch.testing.assert_close(log_prob, expected_log_prob, atol=1e-5, rtol=0)
    torch.testing.assert_close(value, expected_value, atol=1e-5, rtol=0)


def stepwise(core: RecurrentCore, x: torch.Tensor, state: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """Reference unroll, one step at a time with the state zeroed before each episode start."""
    outputs = []
    for t in range(x.shape[0]):
        if t > 0:
            state = state * (~starts[t]).float()[:, None]
        out, state = core.step(x[t], state)
        outputs.append(out)
    return torch.stack(outputs)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_unroll_equals_stepping_with_resets(kind: str) -> None:
    torch.manual_seed(0)
    core = RecurrentCore(kind, 3, 5, layers=2)
    x, state = torch.randn(10, 4, 3), torch.randn(4, core.state_size)
    starts = torch.zeros(10, 4, dtype=torch.bool)
    starts[3, 1] = starts[3, 2] = starts[7, 0] = starts[0, 3] = True
    torch.testing.assert_close(core.unroll(x, state, starts), stepwise(core, x, state, starts))


def test_state_packs_per_env() -> None:
    """A batch's flat state is the rows of each env's own: stepping envs together or apart agrees."""
    torch.manual_seed(0)
    core = RecurrentCore("lstm", 3, 4, layers=2)
    x, state = torch.randn(5, 3), torch.randn(5, core.state_size)
    together = core.step(x, state)[1]
    apart = torch.cat([core.step(x[i:i + 1], state[i:i + 1])[1] for i in range(5)])
    torch.testing.assert_close(together, apart)
    assert core.state_size == 2 * 2 * 4


def test_bootstrap_uses_the_cores_state_after_the_last_step() -> None:
    """The value after the horizon is taken with the state the core reached (zeroed where the step ended an
    episode); a truncated episode's final observation with the pre-reset state."""
    torch.manual_seed(0)
    agent = ActorCritic(2, 2, (8,), "tanh", "discrete", recurrent="gru", recurrent_size=6)
    learner = Learner(ModelSpec(agent.architecture, agent.state_dict(), 1e-3), False, torch.device("cpu"), 1e-3,
                      PPOConfig(epochs=1, minibatch_size=8, seq_length=2), torch.Generator().manual_seed(0))
    n, horizon = 3, 2
    state = agent.initial_state(n)
    trajectory: Trajectory | None = None
    finals = torch.randn(horizon, n, 2)
    nexts = torch.randn(horizon, n, 2)
    truncated = torch.tensor([[False, True, False], [False, False, True]])
    for t in range(horizon):
        obs = torch.randn(n, 2)
        result = agent.act(obs, state=state)
        output = PolicyOutput(result.action, result.value, result.log_prob, result.params, result.observation, 0,
                              result.state)
        trajectory = trajectory or Trajectory(horizon, output, torch.device("cpu"))
        trajectory.add(output, torch.zeros(n), Dones(torch.zeros(n, dtype=torch.bool), truncated[t], finals[t]),
                       nexts[t])
        after = result.next_state
        expected_final = agent.value(finals[t], after)
        state = after * (~truncated[t]).float()[:, None]
        if t == horizon - 1:
            expected_last = agent.value(nexts[t], state)
    assert trajectory is not None
    rollout = learner._bootstrapped([trajectory])
    torch.testing.assert_close(rollout.next_values[-1, :2], expected_last[:2])
    torch.testing.assert_close(rollout.next_values[-1, 2], expected_final[2])
    torch.testing.assert_close(rollout.next_values[0, 1], agent.value(finals[0], agent.step(
        trajectory.buffer.observations[0], trajectory.states[0])[2])[1])


def test_export_takes_and_returns_the_state() -> None:
    torch.manual_seed(0)
    agent = ActorCritic(2, 3, (8,), "tanh", "discrete", normalize_input=True, recurrent="lstm", recurrent_size=6)
    module = torch.jit.trace(agent.deployable(), (torch.zeros(1, 2), agent.initial_state(1)))
    obs, state = torch.randn(4, 2), torch.randn(4, agent.state_size)
    action, next_state = module(obs, state)
    params, _, expected_state = agent.step(agent.normalize_obs(obs), state)
    assert torch.equal(action, params["logits"].argmax(dim=-1))
    torch.testing.assert_close(next_state, expected_state)
