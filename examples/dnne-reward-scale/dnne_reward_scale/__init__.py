"""An example node package for dnne-runtime: ``RewardScaleNode`` scales and clips reward tensors."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from dnne.runtime import Input, Node, NodeRegistry, Output, Param


class RewardScaleNode(Node):
    """Multiplies rewards by ``scale`` and clips them to [-``clip``, ``clip``].

    Put it between a step node's ``rewards`` and a trainer's ``rewards`` to tame reward scales.
    """

    category = "example"

    rewards = Input("Tensor", "rewards [num_envs]", offset=1)
    scaled = Output("Tensor", "scaled, clipped rewards", offset=1)

    scale = Param(float, 1.0, "multiplier", gt=0.0, le=1e6)
    clip = Param(float, 10.0, "absolute bound after scaling", gt=0.0, le=1e9)

    async def compute(self, rewards: torch.Tensor) -> Mapping[str, Any]:
        """Scale and clip one batch."""
        return {"scaled": (rewards * self.scale).clamp(-self.clip, self.clip)}


def register(registry: NodeRegistry) -> None:
    """Entry point of the ``dnne.nodes`` group."""
    registry.add_node(RewardScaleNode)
