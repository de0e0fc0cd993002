"""The data that flows between the built-in RL nodes: policy outputs, dones bundles, models and policy weights, env
handles."""
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
        state: a recurrent policy's state acted with, ``[num_envs, state_size]`` (zero where an episode starts);
            ``None`` for a policy without memory. The learner rebuilds its sequences from these.
    """

    action: torch.Tensor
    value: torch.Tensor
    log_prob: torch.Tensor
    action_params: dict[str, torch.Tensor]
    observation: torch.Tensor
    version: int = 0
    state: torch.Tensor | None = None


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
class ModelSpec:
    """A network as data, what a ``Model`` link carries: enough to build an equal network anywhere.

    Args:
        architecture: the constructor arguments of the network (plain ints, floats, strings, bools and lists).
        weights: its initial ``state_dict``.
        learning_rate: the learning rate its owner suggests (a trainer's own wins).
    """

    architecture: dict[str, Any]
    weights: dict[str, torch.Tensor]
    learning_rate: float


@dataclass(frozen=True)
class ActingRule:
    """When held weights may act on an observation: the gate between a learner and its actors, as data.

    Observation ``k`` of a stream belongs to rollout ``k // horizon``; rollout ``r`` may be acted on with weights of
    version ``first_version + r - max_lag`` or newer. ``max_lag`` 0 is exact on-policy (sync); a positive
    ``max_lag`` lets acting go on while the learner updates, at most that many versions behind (async).

    Args:
        first_version: the version the learner started from (its update count when the run began or resumed).
        horizon: observations per rollout and stream; ``None`` for no gate.
        max_lag: how many versions behind the rollout's own version the weights may be.
    """

    first_version: int = 0
    horizon: int | None = None
    max_lag: int = 0

    def required_version(self, stamp: int | None) -> int:
        """The oldest version that may act on observation ``stamp`` (any, when ungated or unstamped)."""
        if self.horizon is None or stamp is None:
            return 0
        return self.first_version + stamp // self.horizon - self.max_lag


@dataclass(frozen=True)
class PolicyWeights:
    """One version of a policy, published by its learner.

    Args:
        version: the number of updates behind these weights.
        parameters: the network's ``state_dict`` (parameters and normaliser statistics); never changed once sent.
        rule: when these weights may act (see ``ActingRule``).
    """

    version: int
    parameters: dict[str, torch.Tensor]
    rule: ActingRule = field(default_factory=ActingRule)

    def may_act(self, stamp: int | None) -> bool:
        """Whether these weights may act on observation ``stamp``."""
        return self.version >= self.rule.required_version(stamp)


@dataclass(frozen=True)
class EnvHandle:
    """A reference to a running batched environment, passed from the env node to its step and action nodes."""

    env: BatchedEnv
    info: dict[str, Any] = field(default_factory=dict)
