"""``MetricsNode``: lets a graph choose what to record from any Dict stream (``loss_info``, ``info``)."""
from __future__ import annotations

import math
from typing import Any

import torch

from dnne.runtime.node import Node
from dnne.runtime.ports import Input, Param


class MetricsNode(Node):
    """Records chosen fields of the dicts it receives as metrics rows (``metrics.jsonl`` and TensorBoard).

    Tensor values are reduced to their mean; non-numeric values are skipped. With ``every`` > 1 only every
    N-th dict is recorded.
    """

    category = "flow"

    values = Input("Dict", "dicts of named values, e.g. a trainer's loss_info or a step node's info", fan_in=True)

    keys = Param(str, "", "comma-separated fields to record; empty: every numeric field")
    prefix = Param(str, "", "prefix added to every recorded name")
    every = Param(int, 1, "record every N-th dict", ge=1, le=1_000_000)

    async def compute(self, values: dict[str, Any]) -> None:
        """Record one dict."""
        if self.firings % self.every:
            return
        wanted = [k.strip() for k in self.keys.split(",") if k.strip()] or list(values)
        row = {}
        for key in wanted:
            number = _number(values.get(key))
            if number is not None:
                row[f"{self.prefix}{key}"] = number
        if row:
            self.ctx.log_metrics(row)


def _number(value: Any) -> float | None:
    if isinstance(value, torch.Tensor):
        value = value.float().mean().item() if value.numel() else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None
