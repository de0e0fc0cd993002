"""Fault injection for running graphs: a pass-through node that, at a chosen firing, raises, returns NaN or Inf,
awaits forever, blocks the event loop, or ends the process. Load it with ``--plugin fault_nodes`` (this folder on
``PYTHONPATH``) or ``fault_registry()``."""
from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from typing import Any

import torch

from dnne.runtime import Input, Node, Output, Param
from dnne.runtime.registry import NodeRegistry, default_registry

FAULTS = ("none", "raise", "nan", "inf", "hang", "block", "exit")


class Fault(Node):
    """Forwards a tensor stream unchanged until firing ``at``, then injects ``fault`` (and keeps injecting it)."""

    x = Input("Tensor", "a tensor stream (the step node's rewards)", offset=1)
    y = Output("Tensor", "the same stream, faulty from firing ``at``", offset=1)
    fault = Param(str, "none", "raise, nan, inf, hang (await forever), block (the event loop), exit (the process)",
                  choices=FAULTS)
    at = Param(int, 1, "the firing the fault starts at", ge=1, le=1_000_000_000)
    seconds = Param(float, 3600.0, "how long 'block' blocks the event loop", ge=0.0, le=86400.0)

    async def compute(self, x: torch.Tensor) -> Mapping[str, Any]:
        if self.fault == "none" or self.firings < self.at:
            return {"y": x}
        if self.fault == "raise":
            raise RuntimeError(f"injected fault at firing {self.firings}")
        if self.fault == "nan":
            return {"y": torch.full_like(x, float("nan"))}
        if self.fault == "inf":
            return {"y": torch.full_like(x, float("inf"))}
        if self.fault == "hang":
            await asyncio.get_running_loop().create_future()
        if self.fault == "block":
            time.sleep(self.seconds)  # a simulator stuck in a synchronous call: the event loop cannot turn
            return {"y": x}
        os._exit(3)


def register(registry: NodeRegistry) -> None:
    """Entry point of ``--plugin fault_nodes``."""
    registry.add_node(Fault)


def fault_registry() -> NodeRegistry:
    """The installed node packages plus ``Fault``."""
    registry = default_registry()
    register(registry)
    return registry


def faulty_graph(base: dict[str, Any], fault: str, at: int, **params: Any) -> dict[str, Any]:
    """``base`` (a PPO graph document) with a ``Fault`` node between the step node's rewards and the trainer."""
    graph = dict(base, nodes=dict(base["nodes"]), links=list(base["links"]))
    graph["nodes"]["fault"] = {"type": "Fault", "params": {"fault": fault, "at": at, **params}}
    graph["links"] = [link for link in graph["links"] if link != ["step.rewards", "trainer.rewards"]]
    graph["links"] += [["step.rewards", "fault.x"], ["fault.y", "trainer.rewards"]]
    return graph
