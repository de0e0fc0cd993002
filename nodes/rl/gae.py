"""Generalized advantage estimation over a ``[T, N]`` rollout, with separate termination and truncation."""
from __future__ import annotations

import torch


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    dones: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Compute GAE(gamma, lambda) advantages and returns.

    Each step carries the value of its own true next state, so a truncated episode bootstraps from its final
    observation and the last step of the rollout from the observation after it; only a termination bootstraps zero.

    Args:
        rewards: ``[T, N]`` rewards.
        values: ``[T, N]`` value of the observation each action was taken in (reward units).
        next_values: ``[T, N]`` value of the true next state after step ``t`` (reward units).
        terminated: ``[T, N]`` the episode reached a terminal state at step ``t`` (bool or 0/1).
        dones: ``[T, N]`` the episode ended at step ``t`` (terminated or truncated): cuts the lambda recursion.
        gamma: discount factor.
        lam: GAE lambda.

    Returns:
        ``(advantages, returns)``, both ``[T, N]``, with ``returns = advantages + values``.
    """
    not_terminated = 1.0 - terminated.to(values.dtype)
    not_done = 1.0 - dones.to(values.dtype)
    deltas = rewards + gamma * next_values * not_terminated - values
    advantages = torch.zeros_like(values)
    next_advantage = torch.zeros_like(values[0])
    for t in reversed(range(values.shape[0])):
        next_advantage = deltas[t] + gamma * lam * not_done[t] * next_advantage
        advantages[t] = next_advantage
    return advantages, advantages + values
