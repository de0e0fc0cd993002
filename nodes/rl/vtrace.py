"""V-trace (Espeholt et al., 2018) in GAE form: advantages and value targets corrected for a stale behaviour policy."""
from __future__ import annotations

import torch


def compute_vtrace(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    dones: torch.Tensor,
    log_rhos: torch.Tensor,
    gamma: float,
    lam: float,
    rho_clip: float,
    c_clip: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Truncated-importance-weighted advantages and value targets over a ``[T, N]`` rollout.

    With ``rho_t = min(rho_clip, pi/mu)`` and ``c_t = lam * min(c_clip, pi/mu)`` (``pi`` the learner's policy,
    ``mu`` the one that acted): ``delta_t = rho_t (r_t + gamma V(x_{t+1}) - V(x_t))`` and
    ``A_t = delta_t + gamma c_t A_{t+1}`` within an episode; the value target is ``v_t = V(x_t) + A_t`` (V-trace's
    ``v_s``) and ``A_t`` the policy's advantage. Where ``log_rhos`` is 0 (on-policy), this is ``compute_gae``
    exactly. Truncation bounds the variance of stale transitions: a step the learner's policy would take less
    often than the actor did is down-weighted, one it would take more often is not up-weighted past the clip.

    Args:
        rewards, values, next_values, terminated, dones: as ``compute_gae`` (values in reward units).
        log_rhos: ``[T, N]`` ``log pi(a|x) - log mu(a|x)`` of each stored action.
        gamma: discount factor.
        lam: lambda of the traces.
        rho_clip: truncation of the importance weights in the temporal differences (V-trace's rho-bar).
        c_clip: truncation of the importance weights in the traces (V-trace's c-bar).

    Returns:
        ``(advantages, returns)``, both ``[T, N]``, with ``returns = advantages + values``.
    """
    rhos = log_rhos.exp()
    clipped_rhos = rhos.clamp(max=rho_clip)
    traces = lam * rhos.clamp(max=c_clip)
    not_terminated = 1.0 - terminated.to(values.dtype)
    not_done = 1.0 - dones.to(values.dtype)
    deltas = clipped_rhos * (rewards + gamma * next_values * not_terminated - values)
    advantages = torch.zeros_like(values)
    next_advantage = torch.zeros_like(values[0])
    for t in reversed(range(values.shape[0])):
        next_advantage = deltas[t] + gamma * traces[t] * not_done[t] * next_advantage
        advantages[t] = next_advantage
    return advantages, advantages + values
