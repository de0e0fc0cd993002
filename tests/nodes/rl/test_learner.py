"""Learner: built from a Model message, it bootstraps with its own network and reports the lag of every
transition."""
from __future__ import annotations

import copy

import torch

from dnne.nodes.rl.actor_critic import ActorCritic
from dnne.nodes.rl.learner import Learner, lag_stats
from dnne.nodes.rl.ppo import PPOConfig
from dnne.nodes.rl.trajectory import Trajectory
from dnne.nodes.types import Dones, ModelSpec, PolicyOutput

T, N = 4, 3


def make_learner(normalize_value: bool = False) -> tuple[Learner, ActorCritic]:
    """A learner built from an agent-side network's Model message, and that network."""
    torch.manual_seed(0)
    agent = ActorCritic(2, 2, (8,), "tanh", "discrete", normalize_input=True)
    spec = ModelSpec(agent.architecture, agent.state_dict(), 1e-3)
    learner = Learner(spec, normalize_value, torch.device("cpu"), 1e-3, PPOConfig(epochs=1, minibatch_size=6),
                      torch.Generator().manual_seed(0))
    return learner, agent


def rollout(agent: ActorCritic, versions: list[int], truncate_at: int | None = None) -> Trajectory:
    """A full rollout acted by ``agent`` with the given behaviour versions; env 0 is truncated at one step."""
    generator = torch.Generator().manual_seed(1)
    trajectory: Trajectory | None = None
    for t, version in enumerate(versions):
        obs = torch.randn(N, 2, generator=generator)
        result = agent.act(obs, generator=generator)
        output = PolicyOutput(result.action, result.value, result.log_prob, result.params, result.observation,
                              version)
        trajectory = trajectory or Trajectory(T, output, torch.device("cpu"))
        truncated = torch.zeros(N, dtype=torch.bool)
        if t == truncate_at:
            truncated[0] = True
        final = torch.full((N, 2), float(t))
        trajectory.add(output, torch.ones(N), Dones(torch.zeros(N, dtype=torch.bool), truncated, final),
                       torch.randn(N, 2, generator=generator))
    assert trajectory is not None
    return trajectory


class TestLearner:
    def test_built_from_the_model_message(self) -> None:
        """The learner's network starts equal to the agent's, shares no tensor with it, and its published weights
        are copies that later updates leave unchanged."""
        learner, agent = make_learner()
        for name, value in agent.state_dict().items():
            learned = learner.network.state_dict()[name]
            assert torch.equal(learned, value) and learned.data_ptr() != value.data_ptr()
        published = learner.weights()
        before = {k: v.clone() for k, v in published.items()}
        learner.train([rollout(agent, [0] * T)], max_lag=0)
        assert all(torch.equal(published[k], before[k]) for k in before)
        assert not all(torch.equal(learner.network.state_dict()[k], before[k]) for k in before)

    def test_state_dict_is_a_copy_that_restores_the_same_training(self) -> None:
        """The checkpoint state equals a deep copy of the optimizer's own state, later updates leave it unchanged,
        and a fresh learner loaded from it trains to exactly the weights the original reaches."""
        learner, agent = make_learner()
        learner.train([rollout(agent, [0] * T)], max_lag=0)
        state = learner.state_dict()
        reference = copy.deepcopy(learner.optimizer.state_dict())
        assert state["optimizer"]["param_groups"] == reference["param_groups"]
        for index, tensors in reference["state"].items():
            for name, value in tensors.items():
                kept = state["optimizer"]["state"][index][name]
                assert torch.equal(kept, value) and kept.data_ptr() != learner.optimizer.state_dict()[
                    "state"][index][name].data_ptr(), (index, name)
        frozen = copy.deepcopy(state)
        minibatches = learner.update.generator.get_state()  # the trainer node keeps the generator's state
        learner.train([rollout(agent, [1] * T)], max_lag=1)
        for index, tensors in frozen["optimizer"]["state"].items():
            assert all(torch.equal(state["optimizer"]["state"][index][n], v) for n, v in tensors.items())
        restored, _ = make_learner()
        restored.load_state_dict(frozen)
        restored.update.generator.set_state(minibatches)
        restored.version = 1
        restored.train([rollout(agent, [1] * T)], max_lag=1)
        for name, value in learner.network.state_dict().items():
            assert torch.equal(restored.network.state_dict()[name], value), name

    def test_updates_equal_torch_adam_one_tensor_at_a_time(self) -> None:
        """The learner's Adam runs over all parameters at once (foreach); three updates give exactly the weights
        the same learner gets with torch's one-tensor-at-a-time Adam (its CPU default)."""
        from dnne.nodes.eager_adam import EagerAdam

        learner, agent = make_learner()
        reference, _ = make_learner()
        assert learner.optimizer.defaults["foreach"] is True
        reference.optimizer = EagerAdam(reference.network.parameters(), lr=1e-3, eps=1e-5, foreach=False)
        reference.update.optimizer = reference.optimizer
        for _ in range(3):
            learner.train([rollout(agent, [0] * T)], max_lag=0)
            reference.train([rollout(agent, [0] * T)], max_lag=0)
        for name, value in reference.network.state_dict().items():
            assert torch.equal(learner.network.state_dict()[name], value), name

    def test_bootstrap_uses_the_learners_own_values(self) -> None:
        """Next values: the agent's value of the next observation inside the rollout, the learner's own value of the
        observation after the last step and of a truncated episode's final observation."""
        learner, agent = make_learner()
        trajectory = rollout(agent, [0] * T, truncate_at=1)
        expected_last = learner.network.value(learner.network.normalize_obs(trajectory.next_observations[-1]))
        expected_final = learner.network.value(learner.network.normalize_obs(torch.full((1, 2), 1.0)))
        buffer = learner._bootstrapped([trajectory])
        assert torch.allclose(buffer.next_values[:-1, 1:], buffer.values[1:, 1:])
        assert torch.allclose(buffer.next_values[-1], expected_last)
        assert torch.allclose(buffer.next_values[1, 0], expected_final[0])
        assert torch.allclose(buffer.next_values[0, 0], buffer.values[1, 0])

    def test_input_statistics_follow_the_rollout(self) -> None:
        """After an update the learner's input statistics are those of the rollout's raw next observations, and
        they travel in the published weights."""
        learner, agent = make_learner()
        trajectory = rollout(agent, [0] * T)
        _, weights = learner.train([trajectory], max_lag=0)
        raw = trajectory.next_observations.flatten(0, 1).double()
        assert torch.allclose(weights["obs_normalizer.mean"], raw.mean(0))
        assert torch.allclose(weights["obs_normalizer.var"], raw.var(0, unbiased=False))

    def test_lag_of_every_transition(self) -> None:
        """A learner at version 3 training on steps acted by versions 3, 2, 2, 1 reports lags 0, 1, 1, 2 (per env):
        mean 1, max 2, and the fraction at each lag."""
        learner, agent = make_learner()
        learner.version = 3
        stats, _ = learner.train([rollout(agent, [3, 2, 2, 1])], max_lag=2)
        assert stats["lag_mean"] == 1.0 and stats["lag_max"] == 2.0
        assert (stats["lag_0"], stats["lag_1"], stats["lag_2"]) == (0.25, 0.5, 0.25)
        assert learner.version == 4

    def test_lag_stats_bins(self) -> None:
        """lag_stats counts each lag up to max_lag; a larger lag still shows in lag_max."""
        stats = lag_stats(torch.tensor([0, 0, 1, 3]), max_lag=1)
        assert stats == {"lag_mean": 1.0, "lag_max": 3.0, "lag_0": 0.5, "lag_1": 0.25}
