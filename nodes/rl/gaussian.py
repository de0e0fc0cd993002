"""``DiagonalGaussian``: the log-probability and entropy of a diagonal Gaussian over action vectors, in closed form.

The same numbers as ``Independent(Normal(mean, std), 1)``, bit for bit (the same arithmetic), without what
``torch.distributions`` does on every construction (argument checks, broadcasting, constraint objects): in a PPO
minibatch step of a small policy that costs more than the network's own forward pass.
"""
from __future__ import annotations

import math

import torch

_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))


class DiagonalGaussian:
    """Independent Gaussians, one per action dimension, summed over the last dimension.

    Args:
        mean: ``[..., action_dim]``.
        std: ``[..., action_dim]`` (or broadcastable to ``mean``), positive.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean = mean
        self.std = std

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        """``sum_i log N(a_i; mean_i, std_i)`` over the last dimension (``Normal.log_prob``'s arithmetic)."""
        variance = self.std**2
        log_std = self.std.log()
        return (-((actions - self.mean) ** 2) / (2 * variance) - log_std - _LOG_SQRT_2PI).sum(-1)

    def entropy(self) -> torch.Tensor:
        """``sum_i (1/2 + log(2 pi)/2 + log std_i)`` over the last dimension (``Normal.entropy``'s arithmetic)."""
        return (0.5 + 0.5 * math.log(2 * math.pi) + torch.log(self.std.expand_as(self.mean))).sum(-1)
