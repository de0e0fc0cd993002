"""The in-memory graph: nodes, links, the run section, placement; a builder API and the native format."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

FORMAT_NAME = "dnne-graph"
FORMAT_VERSION = 1

def _engine_run_keys() -> dict[str, str]:
    from .vocabulary import engine_run_keys

    return {name: key.doc for name, key in engine_run_keys().items()}


RUN_KEYS: dict[str, str] = _engine_run_keys()  # the engine's own; node packages register more (vocabulary)


@dataclass
class NodeSpec:
    """A node as written in a graph.

    Args:
        id: unique node id.
        type: registered node type name.
        params: param values by (canonical) name.
        where: JSON pointer of the node in its file.
        param_where: JSON pointer of each param value in its file.
    """

    id: str
    type: str
    params: dict[str, Any] = field(default_factory=dict)
    where: str = ""
    param_where: dict[str, str] = field(default_factory=dict)


@dataclass
class LinkSpec:
    """A link from ``src.src_port`` to ``dst.dst_port``.

    Args:
        src, src_port, dst, dst_port: the ends.
        capacity: channel capacity (``None``: the runtime default).
        policy: ``block`` or ``latest`` (``None``: block).
        route: deliver only messages of this stream (multi-stream graphs; ``streams``).
        where: JSON pointer of the link in its file.
        stream: the name of the stream the link's messages form at a fan-in input (default: the source node id).
    """

    src: str
    src_port: str
    dst: str
    dst_port: str
    capacity: int | None = None
    policy: str | None = None
    route: str | None = None
    where: str = ""
    stream: str | None = None

    def __str__(self) -> str:
        return f"{self.src}.{self.src_port} -> {self.dst}.{self.dst_port}"


@dataclass
class Graph:
    """A graph of nodes and links plus its run section; build it in code or load it from a file.

    Args:
        nodes: node specs by id.
        links: the links.
        run: the run section (seed, device, stop conditions).
        placement: node id -> worker name, for graphs split over processes.
        workers: worker name -> options (the Python interpreter to run it under).
        path: the file it was loaded from.
        format: the format it was loaded from.
        allowed_modules: modules the command line allows nodes to import by name (``module:EnvId``); never read
            from a file and never written to one.
        run_where: where each run value set outside the file's run section came from (``--set run.KEY``, a
            command-line flag); a value not named here is at ``/run/KEY``.
    """

    nodes: dict[str, NodeSpec] = field(default_factory=dict)
    links: list[LinkSpec] = field(default_factory=list)
    run: dict[str, Any] = field(default_factory=dict)
    placement: dict[str, str] = field(default_factory=dict)
    workers: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: str | None = None
    format: str = FORMAT_NAME
    warnings: list[Any] = field(default_factory=list)
    allowed_modules: frozenset[str] = frozenset()
    run_where: dict[str, str] = field(default_factory=dict)

    def run_place(self, key: str) -> str:
        """Where run value ``key`` was written: a ``--set`` argument, a flag, or its place in the file."""
        return self.run_where.get(key, f"/run/{key}")

    def add(self, node_id: str, node_type: str, **params: Any) -> Graph:
        """Add a node; returns the graph so calls chain."""
        if node_id in self.nodes:
            raise ValueError(f"duplicate node id {node_id!r}")
        self.nodes[node_id] = NodeSpec(node_id, node_type, dict(params))
        return self

    def link(
        self,
        src: str,
        dst: str,
        capacity: int | None = None,
        policy: str | None = None,
        route: str | None = None,
        stream: str | None = None,
    ) -> Graph:
        """Link ``"node.output"`` to ``"node.input"``; returns the graph so calls chain."""
        (src_node, src_port), (dst_node, dst_port) = split_endpoint(src), split_endpoint(dst)
        self.links.append(LinkSpec(src_node, src_port, dst_node, dst_port, capacity, policy, route, stream=stream))
        return self

    def copy(self) -> Graph:
        """A deep copy."""
        return copy.deepcopy(self)

    def to_native(self) -> dict[str, Any]:
        """The graph in the native file format."""
        links: list[Any] = []
        for link in self.links:
            ends = [f"{link.src}.{link.src_port}", f"{link.dst}.{link.dst_port}"]
            extra = {k: v for k, v in (("capacity", link.capacity), ("policy", link.policy), ("route", link.route),
                                       ("stream", link.stream)) if v}
            links.append({"from": ends[0], "to": ends[1], **extra} if extra else ends)
        document: dict[str, Any] = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "nodes": {spec.id: {"type": spec.type, "params": spec.params} for spec in self.nodes.values()},
            "links": links,
            "run": self.run,
        }
        if self.placement:
            document["placement"] = self.placement
        if self.workers:
            document["workers"] = self.workers
        return document


def split_endpoint(text: str) -> tuple[str, str]:
    """Split ``"node.port"`` at its last dot; ``ValueError`` when there is none."""
    node, dot, port = text.rpartition(".")
    if not dot or not node or not port:
        raise ValueError(f"link end {text!r} is not of the form node.port")
    return node, port
