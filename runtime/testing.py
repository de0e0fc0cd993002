"""Test one node alone: feed its inputs, collect its outputs (for plugin authors)."""
from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from .graph import Graph
from .loading import load_graph
from .node import Node
from .ports import Input, Output
from .registry import NodeRegistry, default_registry
from .runner import GraphRun, RunResult


class _Feed(Node):
    """Sends a fixed list of values, one per firing, then ends."""

    out = Output("Any")

    async def run(self) -> None:
        source, messages = self.ctx.settings["_feeds"][self.id]
        for stamp, value in messages:
            await self.emit("out", value, stamp=stamp, source=source)


class _Collect(Node):
    """Records every value it receives."""

    value = Input("Any")

    async def compute(self, value: Any) -> None:
        self.ctx.shared("collected", dict).setdefault(self.id, []).append(value)


async def run_node(
    node_type: str | type[Node],
    inputs: Mapping[str, Sequence[Any]],
    params: Mapping[str, Any] | None = None,
    registry: NodeRegistry | None = None,
    timeout: float = 30.0,
    stamps: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, list[Any]]:
    """Run one node on given input streams and return what each output sent.

    Args:
        node_type: a registered type name or a ``Node`` class.
        inputs: values per input port, fed one per firing (config inputs: a one-element list).
        params: the node's params.
        registry: where ``node_type`` is registered (default: installed packages; a class is added to a copy).
        timeout: seconds before the run is stopped.
        stamps: stamps per input port; by default ``offset, offset + 1, ...`` so the inputs are in step.

    Returns:
        The values sent on each linked output, in order.

    Raises:
        RuntimeError: the node failed; its cause is chained.
    """
    registry = registry or default_registry()
    if isinstance(node_type, type):
        registry.add_node(node_type)
        node_type = node_type.type_name()
    registry.add_node(_Feed, "_dnne_test_feed")
    registry.add_node(_Collect, "_dnne_test_collect")
    cls = registry.get(node_type)
    if cls is None:
        raise KeyError(f"unknown node type {node_type!r}")
    graph = Graph().add("node", node_type, **dict(params or {}))
    feeds = {}
    for port, values in inputs.items():
        feed_id = f"feed_{port}"
        graph.add(feed_id, "_dnne_test_feed").link(f"{feed_id}.out", f"node.{port}")
        spec = cls.input_ports.get(port)
        offset = spec.offset if spec is not None else 0
        port_stamps = list((stamps or {}).get(port, range(offset, offset + len(values))))
        # Fan-in inputs name every message's source; one shared name keeps the fed streams one stream.
        source = "feed" if spec is not None and spec.fan_in else None
        feeds[feed_id] = (source, list(zip(port_stamps, values)))
    for port in cls.output_ports:
        graph.add(f"out_{port}", "_dnne_test_collect").link(f"node.{port}", f"out_{port}.value")
    graph.run = {"timeout": timeout}
    graph = load_graph(graph, registry=registry)
    graph.run["_feeds"] = feeds
    graph_run = GraphRun(graph, registry)
    result: RunResult = await graph_run.execute()
    if result.error is not None:
        raise RuntimeError(str(result.error)) from result.error.cause
    collected = graph_run.context.shared("collected", dict)
    return {port: collected.get(f"out_{port}", []) for port in cls.output_ports}


def run_node_sync(*args: Any, **kwargs: Any) -> dict[str, list[Any]]:
    """``run_node`` from synchronous code (a plain pytest test)."""
    return asyncio.run(run_node(*args, **kwargs))
