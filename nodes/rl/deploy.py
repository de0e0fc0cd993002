"""What ``dnne export`` gets from a PPO agent: the acting path as a module, an example input, and the spaces."""
from __future__ import annotations

from typing import Any

import torch

from ..envs.spaces import Box, Discrete
from .actor_critic import ActorCritic


def deployable(model: ActorCritic, observation_space: Any, action_space: Any) -> tuple[torch.nn.Module, Any,
                                                                                        dict[str, Any]]:
    """The frozen policy (raw observations -> deterministic actions, the observation normaliser included; with a
    recurrent core ``(observations, state) -> (actions, next_state)``), an example batch of two observations (and
    zero states), so an exported batch dimension stays dynamic, and metadata describing the observation and the
    policy's action spaces."""
    module = model.deployable()
    observations = torch.zeros(2, model.obs_dim, device=next(module.parameters()).device)
    example: Any = (observations, model.initial_state(2)) if model.recurrent else observations
    metadata = {
        "state_size": model.state_size,
        "observation_space": describe(observation_space) or {"type": "box", "shape": [model.obs_dim]},
        "policy_action": {"type": "discrete", "n": model.action_dim} if model.discrete
        else {"type": "box", "shape": [model.action_dim], "low": -1.0, "high": 1.0},
        "env_action_space": describe(action_space),
    }
    return module, example, metadata


def describe(space: Any) -> dict[str, Any] | None:
    """A space as JSON-ready data (None when unknown)."""
    if isinstance(space, Discrete):
        return {"type": "discrete", "n": space.n}
    if isinstance(space, Box):
        return {"type": "box", "shape": list(space.shape), "low": _finite(space.low), "high": _finite(space.high)}
    return None


def _finite(bound: torch.Tensor) -> list[float | None]:
    """Bounds as a list, infinite ones as None (JSON has no infinity)."""
    return [float(v) if abs(float(v)) != float("inf") else None for v in bound]
