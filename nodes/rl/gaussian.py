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
        terms: ``terms()`` of a distribution with this ``std``, when the caller holds them already.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor,
                 terms: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        self.mean = mean
        self.std = std
        self._terms = terms

    def terms(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(2 std^2, log std)``: the parts of ``log_prob`` that depend on ``std`` alone."""
        if self._terms is None:
            self._terms = (2 * self.std**2, self.std.log())
        return self._terms

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        """``sum_i log N(a_i; mean_i, std_i)`` over the last dimension (``Normal.log_prob``'s arithmetic)."""
        two_variance, log_std = self.terms()
        return (-((actions - self.mean) ** 2) / two_variance - log_std - _LOG_SQRT_2PI).sum(-1)

    def entropy(self) -> torch.Tensor:
        """``sum_i (1/2 + log(2 pi)/2 + log std_i)`` over the last dimension (``Normal.entropy``'s arithmetic)."""
        return (0.5 + 0.5 * math.log(2 * math.pi) + torch.log(self.std.expand_as(self.mean))).sum(-1)
