"""Gymnasium's Pendulum-v1 as one batched tensor step."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import TensorTask
from .spaces import Box


def angle_normalize(x: Tensor) -> Tensor:
    """Wrap angles to ``[-pi, pi)`` with a floor modulo, as Gymnasium does.

    Args:
        x: angles in radians.

    Returns:
        The wrapped angles.
    """
    return torch.remainder(x + math.pi, 2 * math.pi) - math.pi


class Pendulum(TensorTask):
    """Gymnasium ``Pendulum-v1`` for N environments at once: swing a torque-limited pendulum up and hold it.

    Dynamics ``thdot' = clip(thdot + (3 g / (2 l) sin(th) + 3 / (m l^2) u) dt, -8, 8)``, ``th' = th + thdot' dt`` with
    g = 10, m = l = 1, dt = 0.05 and the torque ``u`` clipped to [-2, 2]; reward
    ``-(angle_normalize(th)^2 + 0.1 thdot^2 + 0.001 u^2)`` of the state before the step. Observations
    ``[cos th, sin th, thdot]``; never terminates, truncated after ``max_episode_steps``. Equal to Gymnasium's to float
    rounding in float64; reset draws ``th ~ U(-pi, pi)``, ``thdot ~ U(-1, 1)`` from this env's own generator. The
    physics state is ``[th, thdot]``.

    Args:
        num_envs: number of environments.
        device: device of the state and of every returned tensor.
        dtype: float dtype of the physics, observations and rewards.
        max_episode_steps: truncation limit (200 in Pendulum-v1).
        g: gravity, as Gymnasium's ``g`` argument.
    """

    max_speed = 8.0
    max_torque = 2.0
    m = 1.0
    l = 1.0  # noqa: E741  # Gymnasium's name for the pendulum length

    def __init__(
        self,
        num_envs: int,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        max_episode_steps: int = 200,
        g: float = 10.0,
    ) -> None:
        super().__init__(num_envs, device, dtype, max_episode_steps, state_dim=2)
        self.g = g
        self.dt = 0.05
        high = torch.tensor([1.0, 1.0, self.max_speed])
        self.observation_space = Box(-high, high)
        self.action_space = Box(torch.tensor([-self.max_torque]), torch.tensor([self.max_torque]))

    def _sample_initial(self, count: int) -> Tensor:
        return self._uniform(count, [-math.pi, -1.0], [math.pi, 1.0])

    def _advance(self, state: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        th, thdot = state.unbind(1)
        u = actions[:, 0].to(self.dtype).clamp(-self.max_torque, self.max_torque)
        costs = angle_normalize(th).square() + 0.1 * thdot.square() + 0.001 * u.square()
        # Operation order follows Gymnasium's so float64 results agree to the last bits.
        newthdot = thdot + (3 * self.g / (2 * self.l) * torch.sin(th) + 3.0 / (self.m * self.l**2) * u) * self.dt
        newthdot = newthdot.clamp(-self.max_speed, self.max_speed)
        newth = th + newthdot * self.dt
        terminated = torch.zeros(self.num_envs, device=self.device, dtype=torch.bool)
        return torch.stack((newth, newthdot), dim=1), -costs, terminated

    def _observe(self, state: Tensor) -> Tensor:
        th, thdot = state.unbind(1)
        return torch.stack((torch.cos(th), torch.sin(th), thdot), dim=1)
