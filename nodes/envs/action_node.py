"""Action nodes: map policy actions onto an environment's action space."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from dnne.runtime.node import DnneLayout, Node
from dnne.runtime.ports import Input, Output, Param

from ..types import EnvHandle
from .action_transform import ActionTransform, ScaleAction, fit_action
from .spaces import Box


class ActionNode(Node):
    """Fits policy actions to the action space read from ``env_handle``.

    ``rescale`` (default) maps a policy action clamped to [-1, 1] linearly onto the box ``[low, high]``;
    ``clip`` clamps to the box as it is (SB3's behaviour). Discrete actions pass through unchanged. Without an
    env handle, actions are clamped to [-1, 1] (``rescale``) or passed through (``clip``).
    """

    category = "envs"

    policy = Input("Tensor", "policy actions (a PolicyOutput reads as its action)", aliases=("network_output",),
                   reads=("PolicyOutput",))
    env_handle = Input("EnvHandle", "where the action space comes from", optional=True, aliases=("sim_handle",))
    action = Output("Tensor", "actions for the step node")

    mode = Param(str, "rescale", "rescale [-1, 1] onto the box, or clip to it", choices=("rescale", "clip"))

    async def compute(self, policy: torch.Tensor, env_handle: EnvHandle | None = None) -> Mapping[str, Any]:
        """Map one batch of actions."""
        space = env_handle.env.action_space if env_handle is not None else None
        if space is not None and not isinstance(space, Box):
            return {"action": policy}
        return {"action": fit_action(policy, *_bounds(space), self.mode)}

    def deploy_transform(self) -> torch.nn.Module | None:
        """What this node does to an action, as a module for ``dnne export`` (None for discrete actions)."""
        space = self.upstream("action_space", "env_handle")
        if space is not None and not isinstance(space, Box):
            return None
        return ActionTransform(self.mode, *_bounds(space))


def _bounds(space: Box | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    return (space.low, space.high) if space is not None else (None, None)


class CartpoleActionNode(Node):
    """DNNE's Cartpole action: force in newtons = clamp(action, -1, 1) x ``max_push_effort``, one per env."""

    category = "envs"
    dnne = DnneLayout(inputs=("network_output", "context"), outputs=("action", "context"),
                      widgets=("max_push_effort",))

    network_output = Input("Tensor", "policy actions (a PolicyOutput reads as its action)",
                           reads=("PolicyOutput",))
    action = Output("Tensor", "cart forces [num_envs, 1] in newtons")

    max_push_effort = Param(float, 10.0, "force in newtons of a full (+-1) action", gt=0.0, le=1e6)

    async def compute(self, network_output: torch.Tensor) -> Mapping[str, Any]:
        """Scale one batch of actions to forces."""
        action = network_output.reshape(network_output.shape[0], -1)
        return {"action": action.clamp(-1.0, 1.0) * self.max_push_effort}

    def deploy_transform(self) -> torch.nn.Module:
        """The force scaling, as a module for ``dnne export``."""
        return ScaleAction(self.max_push_effort)
