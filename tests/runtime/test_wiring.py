"""Checks of a node against its links and its upstream nodes' static declarations (``runtime/wiring.py``): the
nearest declaration upstream, breadth first as at setup; a node that declares a key only at setup hides what is
beyond it; the check's problems are located like param issues."""
from __future__ import annotations

from typing import Any

import pytest

from dnne.runtime import Input, Node, Output, Param
from dnne.runtime.errors import GraphError
from dnne.runtime.graph import Graph
from dnne.runtime.loading import load_graph
from dnne.runtime.registry import NodeRegistry


class Source(Node):
    """Declares ``size`` statically (its param)."""

    out = Output("Tensor", "values")
    size = Param(int, 3, "the size it declares", ge=1, le=100)
    declares = ("size",)

    @classmethod
    def static_declarations(cls, params: dict[str, Any], trusted: dict[str, Any]) -> dict[str, Any]:
        """Its size, from its param."""
        return {"size": params["size"]}


class Pass(Node):
    """Declares nothing: validation looks past it."""

    input = Input("Tensor", "values")
    out = Output("Tensor", "values")


class Resize(Node):
    """Declares ``size`` only at setup: what is beyond it is not its output's size."""

    input = Input("Tensor", "values")
    out = Output("Tensor", "values")
    declares = ("size",)


class Sink(Node):
    """Wants ``size`` upstream to equal its param, and its ``extra`` input linked when ``strict``."""

    input = Input("Tensor", "values")
    extra = Input("Tensor", "more values", optional=True)
    size = Param(int, 3, "the size it expects", ge=1, le=100)
    strict = Param(bool, False, "needs extra linked")

    @classmethod
    def check_wiring(cls, params: dict[str, Any], wiring: Any) -> list[tuple[str, str | None, str]]:
        """Size against the nearest upstream declaration; ``extra`` linked when strict."""
        problems: list[tuple[str, str | None, str]] = []
        upstream = wiring.upstream("size", "input")
        if upstream is not None and upstream != params["size"]:
            problems.append(("size_mismatch", "size", f"upstream says {upstream}"))
        if params["strict"] and not wiring.linked("extra"):
            problems.append(("extra_not_linked", "strict", "strict needs extra"))
        return problems


@pytest.fixture
def registry() -> NodeRegistry:
    """The four node types."""
    registry = NodeRegistry()
    for cls in (Source, Pass, Resize, Sink):
        registry.add_node(cls)
    return registry


def errors(graph: Graph, registry: NodeRegistry, overrides: list[str] = ()) -> list[tuple[str, str | None]]:
    """(code, place) of every error of loading ``graph``."""
    try:
        load_graph(graph, overrides, registry)
    except GraphError as error:
        return [(issue.code, issue.where) for issue in error.errors]
    return []


def test_nearest_declaration_through_plain_nodes(registry: NodeRegistry) -> None:
    """Through a node that declares nothing, the source's size reaches the sink; a mismatch points at the param."""
    graph = Graph().add("src", "Source", size=4).add("mid", "Pass").add("sink", "Sink", size=4)
    graph.link("src.out", "mid.input").link("mid.out", "sink.input")
    assert errors(graph, registry) == []
    assert errors(graph, registry, ["sink.size=5"]) == [("size_mismatch", "--set sink.size")]


def test_a_node_that_declares_at_setup_hides_what_is_beyond(registry: NodeRegistry) -> None:
    """Behind a node that declares the key only at setup, the source's size is not the sink's input's: no check."""
    graph = Graph().add("src", "Source", size=4).add("mid", "Resize").add("sink", "Sink", size=5)
    graph.link("src.out", "mid.input").link("mid.out", "sink.input")
    assert errors(graph, registry) == []


def test_linked_ports(registry: NodeRegistry) -> None:
    """A check on the links sees which ports are linked."""
    graph = Graph().add("src", "Source").add("sink", "Sink", strict=True).link("src.out", "sink.input")
    assert [code for code, _ in errors(graph, registry)] == ["extra_not_linked"]
    graph.link("src.out", "sink.extra")
    assert errors(graph, registry) == []
