"""A fuzz rule: any document that validates also builds (channels, slots, setup order), on random graphs of the
toy nodes with random links, options, params, groups and stop predicates; validation is the only gate."""
from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnne.runtime.errors import GraphError
from dnne.runtime.loading import load_graph
from dnne.runtime.runner import GraphRun

PORTS = {  # type -> (inputs, outputs), as declared in toy_nodes (Int and Any ports only)
    "Count": ((), ("out",)), "Double": (("x",), ("y",)), "Add": (("a", "b", "c"), ("total",)),
    "Sink": (("x",), ()), "Pair": (("x", "y"), ()), "Merge": (("a", "b", "c"), ("out",)),
    "Relay": (("x",), ("y",)), "Bias": (("x", "bias"), ("y",)),
}
PARAMS = {"Count": {"n": st.integers(-1, 4), "group": st.sampled_from(["g1", "g2", None, 3])},
          "Sink": {"delay": st.sampled_from([0.0, -1.0])}}


@st.composite
def documents(draw: Any) -> dict[str, Any]:
    types = ["Count", *draw(st.lists(st.sampled_from(sorted(PORTS)), max_size=6))]
    nodes: dict[str, Any] = {}
    links: list[Any] = []
    outputs: list[str] = []
    streams = ["g1", "g2", "n0", "n1", "zz"]
    for index, node_type in enumerate(types):
        node_id = f"n{index}"
        params = {name: draw(strategy) for name, strategy in PARAMS.get(node_type, {}).items()
                  if draw(st.booleans())}
        nodes[node_id] = {"type": node_type, "params": params}
        for port in PORTS[node_type][0]:  # mostly fed from earlier nodes: a graph that can validate
            for _ in range(0 if draw(st.integers(0, 19)) == 19 else draw(st.sampled_from([1, 1, 1, 2]))):
                link: dict[str, Any] = {"from": draw(st.sampled_from(outputs or ["n0.out"])), "to": f"{node_id}.{port}"}
                if draw(st.integers(0, 7)) == 7:
                    link["capacity"] = draw(st.integers(0, 4))
                if draw(st.integers(0, 7)) == 7:
                    link["policy"] = draw(st.sampled_from(["block", "latest", "newest"]))
                if draw(st.integers(0, 7)) == 7:
                    link["route"] = draw(st.sampled_from(streams))
                if draw(st.integers(0, 7)) == 7:
                    link["stream"] = draw(st.sampled_from(streams))
                links.append(link)
        outputs += [f"{node_id}.{port}" for port in PORTS[node_type][1]]
    run: dict[str, Any] = {"seed": draw(st.integers(0, 3))}
    if draw(st.booleans()):
        run["stop"] = draw(st.sampled_from([{"counter": "work", ">=": 3}, [{"counter": "x", "<": 1}],
                                            {"counter": "work"}, {"counter": "", ">=": 1}]))
    document: dict[str, Any] = {"format": "dnne-graph", "version": 1, "nodes": nodes, "links": links, "run": run}
    if draw(st.booleans()):
        document["groups"] = {"pair": {"params": {"to": None},
                                       "nodes": {"c": {"type": "Count", "params": {"n": 2}},
                                                 "d": {"type": "Double"}},
                                       "links": [["c.out", "d.x"], ["d.y", "$to.x"]]}}
        document["nodes"]["inst"] = {"group": "pair", "params": {"to": draw(st.sampled_from([*nodes, 1]))}}
    return document


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_a_document_that_validates_builds(registry: Any, document: dict[str, Any]) -> None:
    """No document gets past validation and then fails to build: every link has its channel and converter,
    every node its slots, and the setup order covers every node."""
    try:
        graph = load_graph(document, registry=registry)
    except GraphError:
        return
    run = GraphRun(graph, registry)
    run.build()
    assert set(run.nodes) == set(graph.nodes)
    assert sorted(run.order) == sorted(graph.nodes)
    assert len(run.channels) == len(graph.links)
