"""Partially observed built-in tasks: Cartpole and Pendulum without velocities (rl-zoo's ``CartPoleNoVel-v1`` and
``PendulumNoVel-v1``), which a policy without memory cannot solve."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .cartpole import Cartpole
from .pendulum import Pendulum
from .spaces import Box


class CartpoleNoVel(Cartpole):
    """``Cartpole`` observing only ``[x, theta]``: physics, rewards, resets and episode ends are ``Cartpole``'s.

    Args:
        num_envs: number of environments.
        **options: ``Cartpole``'s keyword arguments.
    """

    def __init__(self, num_envs: int, **options: Any) -> None:
        super().__init__(num_envs, **options)
        box = self.observation_space
        self.observation_space = Box(box.low[[0, 2]], box.high[[0, 2]])

    def _observe(self, state: Tensor) -> Tensor:
        return state[:, [0, 2]]


class PendulumNoVel(Pendulum):
    """``Pendulum`` observing only ``[cos th, sin th]``: physics, rewards and truncation are ``Pendulum``'s.

    Args:
        num_envs: number of environments.
        **options: ``Pendulum``'s keyword arguments.
    """

    def __init__(self, num_envs: int, **options: Any) -> None:
        super().__init__(num_envs, **options)
        box = self.observation_space
        self.observation_space = Box(box.low[:2], box.high[:2])

    def _observe(self, state: Tensor) -> Tensor:
        th = state[:, 0]
        return torch.stack((torch.cos(th), torch.sin(th)), dim=1)
