"""PointMassNav: dynamics, rewards, walls, reset, truncation, seeding and exact resume."""
from __future__ import annotations

import math

import pytest
import torch

from dnne.nodes.envs.base import StepResult
from dnne.nodes.envs.point_mass import PointMassNav
from dnne.nodes.envs.registry import make_env


def reference_step(state: list[float], action: list[float], size: float = 5.0, accel: float = 4.0,
                   damping: float = 2.0, dt: float = 0.1) -> tuple[list[float], float]:
    """One step of the documented physics for one env, in plain Python: next state and distance reward."""
    px, py, vx, vy, gx, gy = state
    position, velocity = [px, py], [vx, vy]
    for i in range(2):
        a = min(max(action[i], -1.0), 1.0)
        velocity[i] = velocity[i] + dt * (accel * a - damping * velocity[i])
        moved = position[i] + dt * velocity[i]
        position[i] = min(max(moved, -size), size)
        if position[i] != moved:
            velocity[i] = 0.0
    reward = -math.hypot(position[0] - gx, position[1] - gy) / size
    return [*position, *velocity, gx, gy], reward


def results_equal(a: StepResult, b: StepResult) -> bool:
    return all(torch.equal(getattr(a, f), getattr(b, f)) for f in StepResult.__dataclass_fields__)


def test_registered_as_torch_task() -> None:
    """``make_env("torch", "PointMassNav", ...)`` builds it, with options passed through."""
    env = make_env("torch", "PointMassNav", 3, "cpu", reward="sparse", goal_radius=0.5)
    assert isinstance(env, PointMassNav) and env.reward == "sparse" and env.goal_radius == 0.5
    assert env.observation_space.dim == 6 and env.action_space.dim == 2


def test_steps_match_the_documented_physics() -> None:
    """From random states (some pushed into the walls), a step equals the plain-Python physics to 1e-12."""
    n = 200
    generator = torch.Generator().manual_seed(0)
    env = PointMassNav(n, dtype=torch.float64)
    env.reset(seed=0)
    states = (torch.rand((n, 6), generator=generator, dtype=torch.float64) * 2 - 1) * torch.tensor(
        [5.2, 5.2, 3.0, 3.0, 4.5, 4.5], dtype=torch.float64)
    states[:, :2] = states[:, :2].clamp(-5, 5)
    actions = torch.randn((n, 2), generator=generator, dtype=torch.float64) * 1.5  # some beyond [-1, 1]
    env.set_state(states)
    result = env.step(actions)
    walls = 0
    for i in range(n):
        expected, reward = reference_step(states[i].tolist(), actions[i].tolist())
        torch.testing.assert_close(env.get_state()[i], torch.tensor(expected, dtype=torch.float64), rtol=0,
                                   atol=1e-12)
        assert result.rewards[i].item() == pytest.approx(reward, abs=1e-12)
        px, py, vx, vy, gx, gy = expected
        observed = result.observations[i].tolist()
        assert observed == pytest.approx([px, py, vx, vy, gx - px, gy - py], abs=1e-12)
        walls += abs(px) == 5.0 or abs(py) == 5.0
    assert walls > 0, "no env reached a wall: the clipping branch went untested"
    assert not result.terminated.any() and not result.truncated.any()


def test_sparse_reward_is_one_within_the_goal_radius() -> None:
    """``reward="sparse"`` pays 1 exactly where the next position is within ``goal_radius`` of the goal."""
    env = PointMassNav(3, dtype=torch.float64, reward="sparse", goal_radius=1.0)
    env.reset(seed=0)
    env.set_state(torch.tensor([[0.0, 0, 0, 0, 0.5, 0], [0, 0, 0, 0, 3.0, 0], [0, 0, 0, 0, 0, 0.999]],
                               dtype=torch.float64))
    result = env.step(torch.zeros(3, 2, dtype=torch.float64))
    assert result.rewards.tolist() == [1.0, 0.0, 1.0]


def test_reset_draws_positions_and_goals_in_the_arena_at_rest() -> None:
    """Reset positions and goals lie within ``size - 0.5``, velocities are zero, and the draws are spread out."""
    env = PointMassNav(4096)
    observations = env.reset(seed=3)
    state = env.get_state()
    assert state[:, [0, 1, 4, 5]].abs().max() <= 4.5
    assert state[:, [0, 1, 4, 5]].abs().max() > 4.4
    assert torch.equal(state[:, 2:4], torch.zeros(4096, 2))
    torch.testing.assert_close(observations[:, 4:6], state[:, 4:6] - state[:, 0:2])


def test_truncates_after_max_episode_steps_and_resets() -> None:
    """Every episode is truncated at step 100 (never terminated), reported with its return, and restarted."""
    env = PointMassNav(8, reward="sparse")
    env.reset(seed=1)
    total = torch.zeros(8)
    for t in range(1, 101):
        result = env.step(torch.ones(8, 2) * 0.3)
        total += result.rewards
        assert not result.terminated.any()
        if t < 100:
            assert not result.truncated.any() and result.episode_returns.numel() == 0
    assert result.truncated.all()
    assert result.episode_lengths.tolist() == [100] * 8
    torch.testing.assert_close(result.episode_returns, total)
    # the final observation is the pre-reset one; the observation is a fresh episode at rest
    assert not torch.equal(result.final_observations, result.observations)
    assert torch.equal(env.get_state()[:, 2:4], torch.zeros(8, 2))


def test_seeding_and_exact_resume() -> None:
    """The same seed gives the same trajectory; state_dict / load_state_dict continues it bit for bit."""
    def actions(t: int) -> torch.Tensor:
        return torch.sin(torch.arange(12, dtype=torch.float32).reshape(6, 2) + t)

    a, b = PointMassNav(6), PointMassNav(6)
    assert torch.equal(a.reset(seed=5), b.reset(seed=5))
    for t in range(150):
        assert results_equal(a.step(actions(t)), b.step(actions(t)))
    saved = a.state_dict()
    expected = [a.step(actions(t)) for t in range(150, 300)]
    c = PointMassNav(6)
    c.reset(seed=99)
    c.load_state_dict(saved)
    for t, reference in zip(range(150, 300), expected):
        assert results_equal(c.step(actions(t)), reference)


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="reward"):
        PointMassNav(2, reward="dense")
    with pytest.raises(ValueError, match="size"):
        PointMassNav(2, size=0.5)
