"""CartpoleNoVel and PendulumNoVel: the built-in tasks with the velocities left out of the observation, and
otherwise the same (physics, rewards, episode ends, final observations)."""
from __future__ import annotations

import pytest
import torch

from dnne.nodes.envs.registry import make_env


@pytest.mark.parametrize(("task", "kept"), [("Cartpole", [0, 2]), ("Pendulum", [0, 1])])
def test_novel_task_is_the_task_without_velocities(task: str, kept: list[int]) -> None:
    full = make_env("torch", task, 16, "cpu")
    novel = make_env("torch", f"{task}NoVel", 16, "cpu")
    assert novel.observation_space.dim == len(kept)
    assert torch.equal(novel.observation_space.low, full.observation_space.low[kept])
    assert torch.equal(novel.observation_space.high, full.observation_space.high[kept])
    assert novel.action_space == full.action_space
    torch.testing.assert_close(novel.reset(seed=3), full.reset(seed=3)[:, kept])
    generator = torch.Generator().manual_seed(0)
    ended = 0
    for _ in range(300):
        if task == "Cartpole":
            actions = torch.randint(0, 2, (16,), generator=generator)
        else:
            actions = torch.rand(16, 1, generator=generator) * 4 - 2
        a, b = novel.step(actions), full.step(actions)
        torch.testing.assert_close(a.observations, b.observations[:, kept])
        torch.testing.assert_close(a.final_observations, b.final_observations[:, kept])
        for name in ("rewards", "terminated", "truncated", "episode_returns", "episode_lengths"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name
        ended += int(a.episode_lengths.numel())
    assert ended > 0


def test_novel_task_restores_its_state() -> None:
    env = make_env("torch", "CartpoleNoVel", 4, "cpu")
    env.reset(seed=1)
    state = env.state_dict()
    first = env.step(torch.ones(4, dtype=torch.long)).observations
    env.load_state_dict(state)
    assert torch.equal(env.step(torch.ones(4, dtype=torch.long)).observations, first)
