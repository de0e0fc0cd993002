"""``ORNode``: forwards whichever input arrives, so a loop can start from outside and continue from inside."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dnne.runtime.node import DnneLayout, Node
from dnne.runtime.ports import Input, Output


class ORNode(Node):
    """Merge: every message on any input is forwarded unchanged, stamp and source kept.

    The basic PPO loop feeds the env's first observations into ``input_a`` and the step node's observations into
    ``input_b``. Messages are taken as they arrive through one long-lived waiter (no per-message tasks, none lost).
    """

    category = "flow"
    merge = True
    dnne = DnneLayout(inputs=("input_a", "input_b", "input_c"), outputs=("output",))

    input_a = Input("Any", "first input", optional=True)
    input_b = Input("Any", "second input", optional=True)
    input_c = Input("Any", "third input", optional=True)
    output = Output("Any", "whichever input arrived")

    async def compute(self, **inputs: Any) -> Mapping[str, Any]:
        """Forward the one input of this firing."""
        (value,) = inputs.values()
        return {"output": value}
