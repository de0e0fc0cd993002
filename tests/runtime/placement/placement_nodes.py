"""A plugin module for the placement tests: the toy nodes plus a tensor source, importable by a worker process
(the main process passes its plugin modules and, for the same interpreter, its ``sys.path`` to each worker)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from toy_nodes import TOY_NODES, register_toy_vocabulary

from dnne.runtime.node import Node
from dnne.runtime.ports import Input, Output, Param
from dnne.runtime.registry import NodeRegistry


class Tensors(Node):
    """Emits ``n`` small float tensors (value i in every element), stamped with the index."""

    out = Output("Tensor", "a [rows, 4] float32 tensor")
    n = Param(int, 5, "how many", ge=0, le=1_000_000)
    rows = Param(int, 64, "rows", ge=1, le=10_000)

    async def run(self) -> None:
        for i in range(self.n):
            await self.emit("out", torch.full((self.rows, 4), float(i)), stamp=i)


class Pid(Node):
    """Declares and reports the process it runs in (so a test can find and kill a worker)."""

    x = Input("Any", "anything")
    y = Output("Any", "the same, forwarded")

    async def setup(self) -> None:
        self.declare("pid", os.getpid())

    async def compute(self, x: Any) -> Mapping[str, Any]:
        return {"y": x}


class Scores(Node):
    """Observes ``count`` samples of ``value`` into the windowed counter ``score`` (window 8), then emits once."""

    out = Output("Any", "a token after observing")
    value = Param(float, 0.0, "the sample value", ge=-1e9, le=1e9)
    count = Param(int, 1, "how many samples", ge=1, le=8)

    async def run(self) -> None:
        self.ctx.counters.observe("score", [self.value] * self.count, 8)
        await self.emit("out", self.value)


def register(registry: NodeRegistry) -> None:
    """Register the toy nodes and the placement test nodes."""
    for cls in (*TOY_NODES, Tensors, Pid, Scores):
        registry.add_node(cls)
    register_toy_vocabulary(registry)


def placement_registry(builtins: bool = False) -> NodeRegistry:
    """A registry with this module loaded as a plugin (so workers load it too)."""
    registry = NodeRegistry()
    if builtins:
        registry.load_entry_points()
    registry.load_plugin("placement_nodes")
    assert not registry.plugin_errors, registry.plugin_errors
    return registry
