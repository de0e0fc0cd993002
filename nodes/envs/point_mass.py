"""A 2-d point mass that must travel across an arena to a goal: a long-horizon navigation task for hierarchies."""
from __future__ import annotations

import torch
from torch import Tensor

from .base import TensorTask
from .spaces import Box


class PointMassNav(TensorTask):
    """Drive a damped 2-d point mass to a goal drawn at reset, for N environments at once.

    Physics per step (``dt`` 0.1): the action ``a`` in ``[-1, 1]^2`` (clipped) is a force,
    ``v' = v + dt (accel a - damping v)``, ``p' = p + dt v'``; a position leaving the arena ``[-size, size]^2`` is
    clipped to it and that velocity component zeroed. With the defaults (accel 4, damping 2) the top speed is
    2 units per second, so crossing the arena (``2 size`` = 10) takes about 50 of the 100 steps: a goal is a long
    way off compared to what the low level can reach in a few steps. Reward ``-||p' - g|| / size`` each step; never
    terminates, truncated after ``max_episode_steps``. Reset draws the position and the goal uniformly in the arena
    (inside ``size - 0.5``) and starts at rest, from this env's own generator. The physics state is
    ``[px, py, vx, vy, gx, gy]``; observations are ``[px, py, vx, vy, gx - px, gy - py]`` (position first, so a
    subgoal node reads it from components 0 and 1).

    Args:
        num_envs: number of environments.
        device: device of the state and of every returned tensor.
        dtype: float dtype of the physics, observations and rewards.
        max_episode_steps: truncation limit.
        size: half-width of the square arena.
        accel: acceleration of a full (+-1) action.
        damping: velocity damping rate (per second).
    """

    def __init__(
        self,
        num_envs: int,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        max_episode_steps: int = 100,
        size: float = 5.0,
        accel: float = 4.0,
        damping: float = 2.0,
        reward: str = "distance",
        goal_radius: float = 1.0,
    ) -> None:
        super().__init__(num_envs, device, dtype, max_episode_steps, state_dim=6)
        if size <= 0.5:
            raise ValueError(f"PointMassNav: size must be larger than 0.5, got {size}")
        self.size = float(size)
        self.accel = float(accel)
        self.damping = float(damping)
        if reward not in ("distance", "sparse"):
            raise ValueError(f"PointMassNav: reward must be 'distance' or 'sparse', got {reward!r}")
        self.reward = reward
        self.goal_radius = float(goal_radius)
        self.dt = 0.1
        speed = self.accel / self.damping if self.damping > 0 else float("inf")
        high = torch.tensor([self.size, self.size, speed, speed, 2 * self.size, 2 * self.size])
        self.observation_space = Box(-high, high)
        self.action_space = Box(-torch.ones(2), torch.ones(2))

    def _sample_initial(self, count: int) -> Tensor:
        inner = self.size - 0.5
        start_and_goal = self._uniform(count, [-inner] * 4, [inner] * 4)
        rest = torch.zeros((count, 2), device=self.device, dtype=self.dtype)
        return torch.cat((start_and_goal[:, :2], rest, start_and_goal[:, 2:]), dim=1)

    def _advance(self, state: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        position, velocity, goal = state[:, 0:2], state[:, 2:4], state[:, 4:6]
        force = actions.to(self.dtype).clamp(-1.0, 1.0)
        velocity = velocity + self.dt * (self.accel * force - self.damping * velocity)
        moved = position + self.dt * velocity
        position = moved.clamp(-self.size, self.size)
        velocity = torch.where(moved == position, velocity, torch.zeros_like(velocity))
        distance = torch.linalg.vector_norm(position - goal, dim=1)
        if self.reward == "sparse":
            rewards = (distance <= self.goal_radius).to(self.dtype)
        else:
            rewards = -distance / self.size
        terminated = torch.zeros(self.num_envs, device=self.device, dtype=torch.bool)
        return torch.cat((position, velocity, goal), dim=1), rewards, terminated

    def _observe(self, state: Tensor) -> Tensor:
        return torch.cat((state[:, 0:4], state[:, 4:6] - state[:, 0:2]), dim=1)
