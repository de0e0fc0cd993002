"""``split_graph``: proxy pairs for crossing links, one setup order, what validation refuses."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dnne.runtime.graph import Graph
from dnne.runtime.loading import load_graph
from dnne.runtime.placement.split import MAIN, describe, setup_order, split_graph
from dnne.runtime.registry import default_registry
from dnne.runtime.runner import GraphRun

CARTPOLE = Path(__file__).parents[3] / "graphs" / "cartpole_ppo.json"
ENV_GROUP = ("env", "or", "action", "step")


def cartpole(placed: bool = True) -> dict:
    document = json.loads(CARTPOLE.read_text())
    if placed:
        document["placement"] = {node_id: "envs" for node_id in ENV_GROUP}
    return document


def test_crossing_links_become_proxy_pairs(wreg):
    g = (Graph().add("c", "Count", n=3, group="g1").add("d", "Double").add("s", "Sink")
         .link("c.out", "d.x", capacity=3).link("d.y", "s.x", route="g1"))
    g.placement = {"d": "w1"}
    split = split_graph(load_graph(g, registry=wreg), wreg)
    assert describe(split)["processes"] == {MAIN: ["c", "s", "~receive1", "~send0"], "w1": ["d", "~receive0", "~send1"]}
    first, second = split.links
    assert (first.name, first.src_process, first.dst_process, first.capacity) == ("c.out -> d.x", MAIN, "w1", 3)
    main_links = {str(link): link for link in split.main.links}
    worker_links = {str(link): link for link in split.workers["w1"].links}
    assert main_links["c.out -> ~send0.x"].capacity == 3
    assert worker_links["~receive0.out -> d.x"].capacity == 3
    assert worker_links["d.y -> ~send1.x"].route == "g1"  # the route filters before anything crosses
    receiver = split.main.nodes["~receive1"]
    assert receiver.params == {"link": 1, "upstream_node": "d", "fan_in": True, "wait_declarations": True}
    assert split.orders[MAIN] == ["c", "~send0", "~receive1", "s"]
    assert split.orders["w1"] == ["~receive0", "d", "~send1"]


def test_stop_conditions_stay_in_the_main_process(wreg):
    g = Graph().add("c", "Count").add("s", "Sink").link("c.out", "s.x")
    g.placement = {"s": "w1"}
    g.run = {"seed": 3, "max_work": 10, "stop": {"counter": "work", ">=": 5}, "timeout": "5s"}
    split = split_graph(load_graph(g, registry=wreg), wreg)
    assert split.main.run == {"seed": 3, "max_work": 10, "stop": {"counter": "work", ">=": 5}, "timeout": "5s"}
    assert split.workers["w1"].run == {"seed": 3}


@pytest.mark.nodes
def test_cartpole_split_keeps_the_one_process_setup_order():
    registry = default_registry()
    whole = GraphRun(load_graph(cartpole(placed=False), registry=registry), registry)
    whole.build()
    graph = load_graph(cartpole(), registry=registry)
    classes = {node_id: registry.get(spec.type) for node_id, spec in graph.nodes.items()}
    assert setup_order(classes, graph.links) == whole.order
    split = split_graph(graph, registry)
    assert sorted(split.workers["envs"].nodes) == sorted([*ENV_GROUP, "~send0", "~send2", "~send3", "~send4",
                                                           "~receive1", "~receive5"])
    by_name = {c.name: c for c in split.links}
    # the agent's setup reads the env's spaces across the boundary; the loop-closing trigger waits for nothing
    assert by_name["or.output -> agent.observations"].wait_declarations
    assert not by_name["trainer.training_complete -> step.trigger"].wait_declarations
    assert by_name["trainer.training_complete -> step.trigger"].capacity == 2
    assert "agent.model -> trainer.model" not in by_name


def test_a_model_link_may_cross(wreg):
    """A Model link carries data (an architecture and weights, never a shared object), so it may cross."""
    g = (Graph().add("w", "Weights").add("c", "Count").add("m", "Scale").add("s", "Sink")
         .link("w.model", "m.model").link("c.out", "m.x").link("m.y", "s.x"))
    g.placement = {"w": "w1"}
    split = split_graph(load_graph(g, registry=wreg), wreg)
    assert [crossing.name for crossing in split.links] == ["w.model -> m.model"]