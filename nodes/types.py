"""The data that flows between the built-in RL nodes: policy outputs, dones bundles and env handles."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from dnne.nodes.envs.base import BatchedEnv


@dataclass(frozen=True)
class PolicyOutput:
    """One batched policy decision.

    Args:
        action: sampled (or deterministic) action, ``[num_envs, action_dim]`` float or ``[num_envs]`` long.
        value: critic estimate of the observation, ``[num_envs]`` (denormalized).
        log_prob: log-probability of ``action``, ``[num_envs]``.
        action_params: distribution parameters: ``{"mean", "std"}`` or ``{"logits"}``.
        observation: the observation as fed to the network (normalized when the agent normalizes input).
        version: the policy version (number of updates applied) that produced this output.
    """

    action: torch.Tensor
    value: torch.Tensor
    log_prob: torch.Tensor
    action_params: dict[str, torch.Tensor]
    observation: torch.Tensor
    version: int = 0


@dataclass(frozen=True)
class Dones:
    """Episode ends after one batched step.

    Read as a tensor it is ``terminated | truncated``.

    Args:
        terminated: episodes that reached a terminal state, ``[num_envs]`` bool.
        truncated: episodes cut by a time limit, ``[num_envs]`` bool.
        final_observations: the true last observation of every env (the pre-reset one where an episode ended).
    """

    terminated: torch.Tensor
    truncated: torch.Tensor
    final_observations: torch.Tensor

    def as_tensor(self) -> torch.Tensor:
        """Return ``terminated | truncated`` as a bool tensor."""
        return self.terminated | self.truncated


@dataclass(frozen=True)
class EnvHandle:
    """A reference to a running batched environment, passed from the env node to its step and action nodes."""

    env: BatchedEnv
    info: dict[str, Any] = field(default_factory=dict)
