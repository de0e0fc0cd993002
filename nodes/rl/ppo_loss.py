"""The clipped PPO loss on one minibatch, with the diagnostics PPO implementations log."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LossTerms:
    """The PPO loss and its parts for one minibatch (scalar tensors).

    Args:
        total: ``policy_loss + value_coef * value_loss - entropy_coef * entropy``, with autograd.
        policy_loss: clipped surrogate loss.
        value_loss: (optionally clipped) squared-error value loss, halved.
        entropy: mean policy entropy.
        approx_kl: ``mean((r - 1) - log r)``, an unbiased low-variance estimate of KL(old || new), no autograd.
        clip_fraction: fraction of samples whose ratio left ``[1 - clip, 1 + clip]``, no autograd.
    """

    total: torch.Tensor
    policy_loss: torch.Tensor
    value_loss: torch.Tensor
    entropy: torch.Tensor
    approx_kl: torch.Tensor
    clip_fraction: torch.Tensor


def ppo_loss(
    new_log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    new_values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    entropy: torch.Tensor,
    clip_param: float,
    value_coef: float,
    entropy_coef: float,
    clip_value_loss: bool,
) -> LossTerms:
    """Compute the clipped PPO objective (as CleanRL's ``ppo_continuous_action.py``).

    All value tensors must be in the same space (the critic's).

    Args:
        new_log_prob: log-probabilities under the current policy, ``[B]``.
        old_log_prob: log-probabilities when the actions were taken, ``[B]``.
        advantages: ``[B]``, already normalized if wanted.
        new_values: current critic outputs, ``[B]``.
        old_values: critic outputs when the actions were taken, ``[B]`` (for value clipping).
        returns: value targets, ``[B]``.
        entropy: per-sample policy entropy, ``[B]``.
        clip_param: the PPO epsilon, for the ratio and (when on) the value clipping.
        value_coef: weight of the value loss.
        entropy_coef: weight of the entropy bonus.
        clip_value_loss: use the pessimistic max of the clipped and unclipped value errors.

    Returns:
        The loss terms.
    """
    log_ratio = new_log_prob - old_log_prob
    ratio = log_ratio.exp()

    # --- policy: pessimistic (min) of the unclipped and clipped surrogate objectives
    surrogate = ratio * advantages
    clipped_surrogate = ratio.clamp(1.0 - clip_param, 1.0 + clip_param) * advantages
    policy_loss = -torch.min(surrogate, clipped_surrogate).mean()

    # --- value: squared error, optionally kept within clip_param of the old prediction
    if clip_value_loss:
        clipped_values = old_values + (new_values - old_values).clamp(-clip_param, clip_param)
        errors = torch.max((new_values - returns).square(), (clipped_values - returns).square())
    else:
        errors = (new_values - returns).square()
    value_loss = 0.5 * errors.mean()

    entropy_mean = entropy.mean()
    total = policy_loss + value_coef * value_loss - entropy_coef * entropy_mean

    with torch.no_grad():
        approx_kl = ((ratio - 1.0) - log_ratio).mean()
        clip_fraction = ((ratio - 1.0).abs() > clip_param).float().mean()
    return LossTerms(total, policy_loss, value_loss, entropy_mean, approx_kl, clip_fraction)
