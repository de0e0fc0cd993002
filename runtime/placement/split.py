"""``split_graph``: a graph with a ``placement`` section as one graph per process, crossing links as proxy pairs.

Each link whose ends sit in different processes becomes ``src.port -> RemoteSend`` in the producer's process and
``RemoteReceive -> dst.port`` in the consumer's, with the link's capacity, policy and route kept on the local halves
(the route filters before anything crosses; the consumer's input keeps its primed tokens). Nodes are unchanged.

Setup runs in one global order, as in one process: each process sets up its nodes in the order the whole graph
would, a ``RemoteSend`` right after its producer and a ``RemoteReceive`` right before its consumer. A receiver waits
for its producer side's declarations only where the producer comes first in that order, so no two processes wait
on each other.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..graph import Graph, LinkSpec, NodeSpec
from ..node import Node
from ..registry import NodeRegistry
from ..stopping import stop_keys
from ..plan import setup_order
from .proxies import RECEIVE_TYPE, SEND_TYPE

MAIN = ""
"""The process name of the main process (nodes the placement does not name)."""
"""Run keys only the main process acts on; workers stop when it tells them."""
DEFAULT_CAPACITY = 2  # the runtime's default (runner.DEFAULT_CAPACITY; not imported to keep the runner out)


@dataclass
class CrossingLink:
    """One link between processes.

    Args:
        index: its number on the wire.
        link: the link as written in the graph.
        src_process, dst_process: the producer's and the consumer's process (``MAIN`` or a worker name).
        capacity: the channel capacity of the link in one process (the credits of its producer side).
        out_type, in_type: the producer's and the consumer's port types (the conversion runs before sending).
        wait_declarations: the producer is set up before the consumer (its declarations are waited for).
    """

    index: int
    link: LinkSpec
    src_process: str
    dst_process: str
    capacity: int
    out_type: str
    in_type: str
    wait_declarations: bool

    @property
    def name(self) -> str:
        """The link's channel name in one process (``src.port -> dst.port``)."""
        return str(self.link)

    @property
    def send_id(self) -> str:
        """The id of its ``RemoteSend`` node."""
        return f"~send{self.index}"

    @property
    def receive_id(self) -> str:
        """The id of its ``RemoteReceive`` node."""
        return f"~receive{self.index}"


@dataclass
class Split:
    """A graph split over processes: one graph and one setup order per process, and the crossing links."""

    graphs: dict[str, Graph]
    orders: dict[str, list[str]]
    links: list[CrossingLink] = field(default_factory=list)

    @property
    def main(self) -> Graph:
        """The main process's graph."""
        return self.graphs[MAIN]

    @property
    def workers(self) -> dict[str, Graph]:
        """Each worker's graph, by worker name."""
        return {name: graph for name, graph in self.graphs.items() if name != MAIN}


def split_graph(graph: Graph, registry: NodeRegistry, skipped: set[str] | frozenset[str] = frozenset()) -> Split:
    """Split a validated graph along its ``placement``; ``skipped`` nodes (play mode) are left out."""
    classes = {node_id: _class(registry, spec) for node_id, spec in graph.nodes.items() if node_id not in skipped}
    links = [link for link in graph.links if link.src in classes and link.dst in classes]
    where = {node_id: graph.placement.get(node_id, MAIN) for node_id in classes}
    # a worker's own graph is validated again: it keeps the run keys files may set (its nodes see the whole run
    # section as settings), not the stop conditions
    stops = stop_keys(registry.vocabulary.shorthands)
    worker_run = {key: value for key, value in graph.run.items()
                  if key in registry.vocabulary.run_keys and key not in stops}
    graphs = {MAIN: Graph(run=dict(graph.run))}
    for name in sorted(set(where.values()) - {MAIN}):
        graphs[name] = Graph(run=dict(worker_run))
    for node_id in classes:
        spec = graph.nodes[node_id]
        graphs[where[node_id]].nodes[node_id] = NodeSpec(node_id, spec.type, dict(spec.params))
    order = setup_order(classes, links)
    position = {node_id: i for i, node_id in enumerate(order)}
    split = Split(graphs, {})
    for link in links:
        src_process, dst_process = where[link.src], where[link.dst]
        if src_process == dst_process:
            graphs[src_process].links.append(LinkSpec(link.src, link.src_port, link.dst, link.dst_port, link.capacity,
                                                      link.policy, link.route))
            continue
        port = classes[link.dst].input_ports[link.dst_port]
        crossing = CrossingLink(
            len(split.links), link, src_process, dst_process, max(link.capacity or DEFAULT_CAPACITY, port.primed),
            classes[link.src].output_ports[link.src_port].type, port.type, position[link.src] < position[link.dst],
        )
        split.links.append(crossing)
        graphs[src_process].add(crossing.send_id, SEND_TYPE, link=crossing.index)
        graphs[src_process].links.append(LinkSpec(link.src, link.src_port, crossing.send_id, "x", link.capacity,
                                                  link.policy, link.route))
        graphs[dst_process].add(crossing.receive_id, RECEIVE_TYPE, link=crossing.index, upstream_node=link.src,
                                fan_in=port.fan_in, wait_declarations=crossing.wait_declarations)
        graphs[dst_process].links.append(LinkSpec(crossing.receive_id, "out", link.dst, link.dst_port, link.capacity,
                                                  link.policy))
    for process in graphs:
        split.orders[process] = _process_order(process, order, where, split.links)
    return split


def _class(registry: NodeRegistry, spec: NodeSpec) -> type[Node]:
    cls = registry.get(spec.type)
    assert cls is not None, f"graph not validated: unknown node type {spec.type}"
    return cls


def _process_order(process: str, order: list[str], where: dict[str, str], links: list[CrossingLink]) -> list[str]:
    """The global order restricted to ``process``: receivers just before their consumer, senders just after
    their producer."""
    result: list[str] = []
    for node_id in order:
        result.extend(c.receive_id for c in links if c.link.dst == node_id and c.dst_process == process)
        if where[node_id] == process:
            result.append(node_id)
        result.extend(c.send_id for c in links if c.link.src == node_id and c.src_process == process)
    return result


def describe(split: Split) -> dict[str, Any]:
    """The split as data (for logs and tests): nodes per process and the crossing links."""
    return {
        "processes": {name: sorted(graph.nodes) for name, graph in split.graphs.items()},
        "links": [{"index": c.index, "link": c.name, "from": c.src_process or "main", "to": c.dst_process or "main",
                   "capacity": c.capacity} for c in split.links],
    }
