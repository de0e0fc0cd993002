"""The plan of a run shared by the runner and the splitter: the order in which a graph's nodes are set up.

``GraphRun`` sets up its nodes in this order; ``placement.split`` computes it once over the whole graph and gives
each process its share, so a split graph is set up in the order the one-process graph is.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from .graph import LinkSpec
from .node import Node
from .validate import strongly_connected


def setup_order(classes: Mapping[str, type[Node]], links: Sequence[LinkSpec]) -> list[str]:
    """Kahn's order over ``links`` between the nodes of ``classes``, leaving out the links that close loops (into
    primed or reply inputs, or merges); nodes left over (none in a validated graph) come last, in their given order."""
    edges: dict[str, set[str]] = {node_id: set() for node_id in classes}
    for link in links:
        edges[link.src].add(link.dst)
    component_of = {n: i for i, comp in enumerate(strongly_connected(edges)) for n in comp}
    incoming: dict[str, set[str]] = {node_id: set() for node_id in classes}
    for link in links:
        dst = classes[link.dst]
        closes_loop = component_of[link.src] == component_of[link.dst] and (
            dst.input_ports[link.dst_port].closes_loop or dst.merge)
        if not closes_loop and link.src != link.dst:
            incoming[link.dst].add(link.src)
    order: list[str] = []
    ready = [n for n in classes if not incoming[n]]
    while ready:
        node_id = ready.pop(0)
        order.append(node_id)
        for other in classes:
            if node_id in incoming[other]:
                incoming[other].discard(node_id)
                if not incoming[other] and other not in order and other not in ready:
                    ready.append(other)
    order.extend(n for n in classes if n not in order)
    return order
