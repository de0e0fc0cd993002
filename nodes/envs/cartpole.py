"""Gymnasium's CartPole-v1 as one batched tensor step."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import TensorTask
from .spaces import Box, Discrete


class Cartpole(TensorTask):
    """Gymnasium ``CartPole-v1`` for N environments at once: same constants, Euler integrator, thresholds and rewards.

    The physics, terminations and truncations equal Gymnasium's to float rounding when ``dtype`` is float64 (Gymnasium
    integrates in float64 and casts observations to float32). Reset states are drawn uniformly from
    ``(-0.05, 0.05)`` with this env's own generator, so they are not Gymnasium's samples for the same seed. The
    physics state is the observation ``[x, x_dot, theta, theta_dot]``.

    Args:
        num_envs: number of environments.
        device: device of the state and of every returned tensor.
        dtype: float dtype of the physics, observations and rewards.
        max_episode_steps: truncation limit (500 in CartPole-v1).
    """

    gravity = 9.8
    masscart = 1.0
    masspole = 0.1
    total_mass = masspole + masscart
    length = 0.5  # half the pole's length, as Gymnasium names it
    polemass_length = masspole * length
    force_mag = 10.0
    tau = 0.02
    theta_threshold_radians = 12 * 2 * math.pi / 360
    x_threshold = 2.4

    def __init__(
        self,
        num_envs: int,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        max_episode_steps: int = 500,
    ) -> None:
        super().__init__(num_envs, device, dtype, max_episode_steps, state_dim=4)
        high = torch.tensor([self.x_threshold * 2, math.inf, self.theta_threshold_radians * 2, math.inf])
        self.observation_space = Box(-high, high)
        self.action_space = Discrete(2)
        self.dt = self.tau

    def _sample_initial(self, count: int) -> Tensor:
        return self._uniform(count, [-0.05] * 4, [0.05] * 4)

    def _advance(self, state: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x, x_dot, theta, theta_dot = state.unbind(1)
        force = torch.where(actions == 1, self.force_mag, -self.force_mag).to(self.dtype)
        costheta = torch.cos(theta)
        sintheta = torch.sin(theta)
        # Operation order follows Gymnasium's so float64 results agree to the last bits.
        temp = (force + self.polemass_length * theta_dot.square() * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * costheta.square() / self.total_mass)
        )
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        x = x + self.tau * x_dot
        x_dot = x_dot + self.tau * xacc
        theta = theta + self.tau * theta_dot
        theta_dot = theta_dot + self.tau * thetaacc
        next_state = torch.stack((x, x_dot, theta, theta_dot), dim=1)
        terminated = (
            (x < -self.x_threshold)
            | (x > self.x_threshold)
            | (theta < -self.theta_threshold_radians)
            | (theta > self.theta_threshold_radians)
        )
        # Gymnasium rewards every step with 1, the terminating one included.
        rewards = torch.ones(self.num_envs, device=self.device, dtype=self.dtype)
        return next_state, rewards, terminated

    def _observe(self, state: Tensor) -> Tensor:
        return state.clone()
