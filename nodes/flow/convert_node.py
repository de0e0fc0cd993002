"""``DonesToTensor``: the explicit conversion of a step's episode ends to a bool tensor."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dnne.runtime.node import Node
from dnne.runtime.ports import Input, Output

from ..types import Dones


class DonesToTensor(Node):
    """Converts ``Dones`` to the ``[num_envs]`` bool tensor ``terminated | truncated``, stamp and source kept.

    A ``Dones`` never feeds a ``Tensor`` input by itself (validation refuses it as ``implicit_conversion``): wiring a
    step's ``dones`` into a trainer's ``rewards`` is a mistake, and where a tensor of episode ends is meant, this
    node says so in the graph.
    """

    category = "flow"

    dones = Input("Dones", "episode ends (a step node's dones)")
    ended = Output("Tensor", "terminated | truncated, [num_envs] bool")

    async def compute(self, dones: Dones) -> Mapping[str, Any]:
        """Convert one step's episode ends."""
        return {"ended": dones.as_tensor()}
