"""Fitting policy actions to an action box: the one definition the ActionNode steps with and exports."""
from __future__ import annotations

import torch
from torch import nn


def fit_action(policy: torch.Tensor, low: torch.Tensor | None, high: torch.Tensor | None, mode: str) -> torch.Tensor:
    """``rescale``: clamp to [-1, 1] and map linearly onto ``[low, high]``; ``clip``: clamp to the box.

    Without bounds, ``rescale`` clamps to [-1, 1] and ``clip`` passes the action through.
    """
    if low is None or high is None:
        return policy.clamp(-1.0, 1.0) if mode == "rescale" else policy
    low = low.to(device=policy.device, dtype=policy.dtype)
    high = high.to(device=policy.device, dtype=policy.dtype)
    if mode == "clip":
        return torch.maximum(torch.minimum(policy, high), low)
    return low + (policy.clamp(-1.0, 1.0) + 1.0) * 0.5 * (high - low)


class ActionTransform(nn.Module):
    """``fit_action`` as a module with its bounds as buffers, for exported policies.

    Args:
        mode: ``rescale`` or ``clip``.
        low: lower bounds of the action box (None: no box).
        high: upper bounds of the action box (None: no box).
    """

    def __init__(self, mode: str, low: torch.Tensor | None = None, high: torch.Tensor | None = None) -> None:
        super().__init__()
        self.mode = mode
        self.bounded = low is not None and high is not None
        self.register_buffer("low", (low if low is not None else torch.zeros(0)).clone().float())
        self.register_buffer("high", (high if high is not None else torch.zeros(0)).clone().float())

    def forward(self, actions: torch.Tensor) -> torch.Tensor:
        """Fit a batch of actions."""
        if self.bounded:
            return fit_action(actions, self.low, self.high, self.mode)
        return fit_action(actions, None, None, self.mode)


class ScaleAction(nn.Module):
    """``clamp(action, -1, 1) * scale`` per env row (DNNE's CartpoleActionNode), for exported policies.

    Args:
        scale: the factor of a full (+-1) action.
    """

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, actions: torch.Tensor) -> torch.Tensor:
        """Scale a batch of actions."""
        return actions.reshape(actions.shape[0], -1).clamp(-1.0, 1.0) * self.scale
