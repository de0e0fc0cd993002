"""Checks of a node against its links and what its upstream nodes will declare, run by validation.

A node type may define two classmethods:

- ``static_declarations(params, trusted) -> dict``: what its ``setup`` will ``declare`` when the params alone say
  (an env node's spaces for a built-in task); ``trusted`` is the context ``check_params`` gets. A node type whose
  setup declares a key lists it in ``declares``, so an upstream search never looks past it for that key (a node that
  changes a space declares its own);
- ``check_wiring(params, wiring) -> [(code, param, message)]``: what setup would refuse given the links
  (``wiring.linked(port)``) and the upstream declarations (``wiring.upstream(key, port)``, ``None`` when unknown
  before running).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import Issue
from .graph import Graph, LinkSpec
from .node import Node

Problem = tuple[str, "str | None", str]


class Wiring:
    """What validation knows of one node's surroundings: its linked ports and its upstream nodes' static
    declarations.

    Args:
        node_id: the node.
        links: the graph's valid links.
        declarations: node id -> the node's static declarations (computed on demand).
        declares: node id -> the keys its setup declares.
    """

    def __init__(self, node_id: str, links: list[LinkSpec], declarations: Callable[[str], dict[str, Any]],
                 declares: Callable[[str], frozenset[str]]) -> None:
        self.node_id = node_id
        self.links = links
        self.declarations = declarations
        self.declares = declares

    def linked(self, port: str) -> bool:
        """Whether input or output ``port`` of the node has a link."""
        return any((link.dst == self.node_id and link.dst_port == port)
                   or (link.src == self.node_id and link.src_port == port) for link in self.links)

    def upstream(self, key: str, port: str) -> Any:
        """The nearest upstream declaration of ``key`` from input ``port``, breadth first as at setup; ``None`` when
        the nearest node that declares it only knows it once running."""
        frontier = [link.src for link in self.links if link.dst == self.node_id and link.dst_port == port]
        seen: set[str] = set()
        while frontier:
            node_id = frontier.pop(0)
            if node_id in seen:
                continue
            seen.add(node_id)
            static = self.declarations(node_id)
            if key in static:
                return static[key]
            if key in self.declares(node_id):
                return None
            frontier.extend(link.src for link in self.links if link.dst == node_id)
        return None


def check_wiring(graph: Graph, classes: dict[str, type[Node]], checked: set[str], links: list[LinkSpec],
                 trusted: dict[str, Any]) -> list[Issue]:
    """Run ``check_wiring`` of every node whose params were good (``checked``); issues located like param issues."""
    cache: dict[str, dict[str, Any]] = {}

    def declarations(node_id: str) -> dict[str, Any]:
        if node_id not in cache:
            cls = classes.get(node_id)
            static = getattr(cls, "static_declarations", None)
            cache[node_id] = {}
            if static is not None and node_id in checked:
                cache[node_id] = dict(static(_params(cls, graph, node_id), trusted) or {})
        return cache[node_id]

    def declares(node_id: str) -> frozenset[str]:
        return frozenset(getattr(classes.get(node_id), "declares", ()))

    issues = []
    for node_id in sorted(checked):
        cls = classes[node_id]
        check = getattr(cls, "check_wiring", None)
        if check is None:
            continue
        spec = graph.nodes[node_id]
        for code, name, message in check(_params(cls, graph, node_id), Wiring(node_id, links, declarations,
                                                                                declares)):
            issues.append(Issue(code, message, node_id, name, spec.param_where.get(name, spec.where) if name
                                else spec.where))
    return issues


def _params(cls: type[Node] | None, graph: Graph, node_id: str) -> dict[str, Any]:
    """Every param of the node, defaults filled in (its given params are already checked and coerced)."""
    assert cls is not None
    params = graph.nodes[node_id].params
    return {name: params.get(name, spec.default) for name, spec in cls.param_specs.items()}
