"""Firing rules on inputs: ``Every`` (every k-th message), ``Window`` (the k messages before), ``Hold`` (one
message for k firings); their stamps, backpressure, loops, errors and declaration checks."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from dnne.runtime.errors import GraphError
from dnne.runtime.firing_rules import Every, Hold, Window
from dnne.runtime.graph import Graph
from dnne.runtime.io import AlignmentError
from dnne.runtime.loading import load_graph
from dnne.runtime.node import Node, NodeDefinitionError
from dnne.runtime.ports import Input, Output, Param


def expected_windows(values: list[int], k: int, firings: int) -> list[tuple[int, ...]]:
    """Firing s's window: the values of steps (s-1)k .. sk-1 (value i belongs to step i), none for firing 0."""
    return [tuple(v for i, v in enumerate(values) if (s - 1) * k <= i < s * k) for s in range(firings)]


class TestEvery:
    @pytest.mark.parametrize("k", [1, 3, 4])
    def test_takes_every_kth_message_restamped(self, registry, run_graph, k):
        """Firing s takes the message stamped s * k, and is stamped s; the messages in between are left out."""
        n = 10
        g = (Graph().add("c", "Count", n=n, first=100).add("t", "Thin", k=k).add("s", "Sink")
             .link("c.out", "t.x").link("t.y", "s.x"))
        run, result = run_graph(g, registry)
        assert result.stop_reason == "completed"
        want = [(100 + i, i // k) for i in range(n) if i % k == 0]
        assert [(v, stamp) for v, stamp, _ in run.nodes["s"].received] == want
        assert result.nodes["t"]["firings"] == len(want)

    def test_unstamped_messages_are_an_error(self, registry, run_graph):
        """A rule counts stamps: an unstamped message fails the node, naming the input."""
        g = Graph().add("c", "Count", n=3, stamped=False).add("t", "Thin").add("s", "Sink") \
            .link("c.out", "t.x").link("t.y", "s.x")
        _, result = run_graph(g, registry)
        assert result.stop_reason == "failed" and result.error is not None and result.error.node_id == "t"
        assert isinstance(result.error.cause, AlignmentError)
        assert "'x'" in str(result.error.cause)


class TestWindow:
    @pytest.mark.parametrize(("k", "steps"), [(3, 9), (4, 10), (1, 5)])
    def test_window_of_the_k_messages_before(self, registry, run_graph, k, steps):
        """Firing s joins x stamped s * k with the w of steps (s-1)k .. sk-1, in order; firing 0's window is
        empty; a last window that never fills never fires."""
        g = (Graph().add("x", "Count", n=steps + 1).add("w", "Count", n=steps, stamp_from=1).add("m", "Sample", k=k)
             .add("s", "Sink").link("x.out", "m.x").link("w.out", "m.w").link("m.total", "s.x"))
        run, result = run_graph(g, registry)
        assert result.stop_reason == "completed", result.error
        firings = steps // k + 1
        windows = expected_windows(list(range(steps)), k, firings)
        assert run.nodes["m"].received == [(s * k, windows[s], s) for s in range(firings)]
        assert [(v, stamp) for v, stamp, _ in run.nodes["s"].received] == \
            [(s * k + sum(windows[s]), s) for s in range(firings)]

    def test_window_values_arrive_in_order(self, registry, run_graph):
        """The window holds the message values in stamp order, not their sum or a copy of one."""
        g = (Graph().add("x", "Count", n=5).add("w", "Count", n=4, first=50, stamp_from=1).add("m", "Sample", k=2)
             .add("s", "Sink").link("x.out", "m.x").link("w.out", "m.w").link("m.total", "s.x"))
        run, _ = run_graph(g, registry)
        assert run.nodes["m"].received == [(0, (), 0), (2, (50, 51), 1), (4, (52, 53), 2)]

    def test_window_larger_than_the_channel(self, registry, run_graph):
        """A window of k messages fills through a link of capacity 1 (the input holds the window itself)."""
        k = 6
        g = (Graph().add("x", "Count", n=3 * k + 1).add("w", "Count", n=3 * k, stamp_from=1).add("m", "Sample", k=k)
             .add("s", "Sink").link("x.out", "m.x", capacity=1).link("w.out", "m.w", capacity=1)
             .link("m.total", "s.x"))
        run, result = run_graph(g, registry)
        assert result.stop_reason == "completed", result.error
        assert [w for _, w, _ in run.nodes["m"].received] == expected_windows(list(range(3 * k)), k, 4)

    def test_window_fills_while_the_join_waits_for_the_sampled_input(self, registry, run_graph):
        """One producer of both inputs, links of capacity 1: the window input keeps taking messages while the join
        waits for the next sampled one, or the producer would block on it before it sends that one."""
        k, n = 4, 13
        g = (Graph().add("p", "Twin", n=n).add("m", "Sample", k=k).add("s", "Sink")
             .link("p.x", "m.x", capacity=1).link("p.w", "m.w", capacity=1).link("m.total", "s.x"))
        run, result = run_graph(g, registry)
        assert result.stop_reason == "completed", result.error
        firings = (n - 1) // k + 1
        assert run.nodes["m"].received == [(s * k, expected_windows(list(range(n)), k, firings)[s], s)
                                           for s in range(firings)]

    def test_a_gap_in_the_window_is_an_error(self, registry, run_graph):
        """A window message whose stamp is not the next one fails the node, naming both inputs."""
        g = (Graph().add("x", "Count", n=7).add("w", "Count", n=6, stamp_from=2).add("m", "Sample", k=3)
             .add("s", "Sink").link("x.out", "m.x").link("w.out", "m.w").link("m.total", "s.x"))
        run, result = run_graph(g, registry)
        assert result.stop_reason == "failed" and result.error is not None and result.error.node_id == "m"
        assert isinstance(result.error.cause, AlignmentError)
        assert "'x'" in str(result.error.cause) and "'w'" in str(result.error.cause)
        assert run.nodes["m"].received == [(0, (), 0)]

    def test_window_input_starts_a_loop(self, registry):
        """Firing 0 takes an empty window, so a loop through a window input validates (like a primed input)."""
        g = (Graph().add("x", "Count", n=4).add("m", "Sample", k=1).add("r", "Relay")
             .link("x.out", "m.x").link("m.total", "r.x").link("r.y", "m.w"))
        load_graph(g, registry=registry)
        g2 = (Graph().add("x", "Count", n=4).add("m", "Add").add("r", "Relay")
              .link("x.out", "m.a").link("m.total", "r.x").link("r.y", "m.b"))
        with pytest.raises(GraphError) as info:
            load_graph(g2, registry=registry)
        assert [issue.code for issue in info.value.errors] == ["unstarted_loop"]


class TestHold:
    @pytest.mark.parametrize("k", [1, 2, 3])
    def test_one_message_serves_k_firings(self, registry, run_graph, k):
        """Firing s takes the slow message stamped s // k: each serves k consecutive firings of the fast input."""
        n = 8
        slow = [1000 + j for j in range((n + k - 1) // k)]
        g = (Graph().add("f", "Count", n=n).add("w", "Count", n=len(slow), first=1000).add("h", "Keep", k=k)
             .link("f.out", "h.fast").link("w.out", "h.slow"))
        run, result = run_graph(g, registry)
        assert result.stop_reason == "completed", result.error
        assert run.nodes["h"].received == [(i, slow[i // k], i) for i in range(n)]

    def test_fast_input_waits_for_the_next_period(self, registry, run_graph):
        """Without the slow message of a new period the firing waits; when the slow input ends, the node ends
        after the last period it holds."""
        g = (Graph().add("f", "Count", n=9).add("w", "Count", n=2, first=1000).add("h", "Keep", k=3)
             .link("f.out", "h.fast").link("w.out", "h.slow"))
        run, result = run_graph(g, registry)
        assert result.stop_reason == "completed", result.error
        assert run.nodes["h"].received == [(i, 1000 + i // 3, i) for i in range(6)]

    def test_slow_message_of_the_wrong_period_is_an_error(self, registry, run_graph):
        """A slow message stamped for another period fails the node, naming both inputs."""
        g = (Graph().add("f", "Count", n=6).add("w", "Count", n=2, stamp_from=1).add("h", "Keep", k=3)
             .link("f.out", "h.fast").link("w.out", "h.slow"))
        run, result = run_graph(g, registry)
        assert result.stop_reason == "failed" and result.error is not None
        assert isinstance(result.error.cause, AlignmentError)
        assert "'fast'" in str(result.error.cause) and "'slow'" in str(result.error.cause)
        assert run.nodes["h"].received == []

    def test_a_period_whose_first_firing_never_came_is_an_error(self, registry, run_graph):
        """A fast message in the middle of a period the node never started fails instead of reusing an old one."""
        g = (Graph().add("f", "Count", n=4, stamp_from=1).add("w", "Count", n=2).add("h", "Keep", k=3)
             .link("f.out", "h.fast").link("w.out", "h.slow"))
        _, result = run_graph(g, registry)
        assert result.stop_reason == "failed" and isinstance(result.error.cause, AlignmentError)


class TestDeclarations:
    def test_size_from_a_number_or_an_attribute(self):
        """A rule's size is a number or the value of the node attribute it names, a positive int."""
        assert Every(4).size(SimpleNamespace()) == 4
        assert Window("k").size(SimpleNamespace(k=7)) == 7
        for bad in (SimpleNamespace(k=0), SimpleNamespace(k=True), SimpleNamespace(k=2.0), SimpleNamespace()):
            with pytest.raises(ValueError):
                Hold("k").size(bad)

    def test_size_set_by_start(self, registry, run_graph):
        """A size named by an attribute the node sets in ``start()`` is read at the first firing."""
        g = Graph().add("c", "Count", n=7).add("t", "ThinLater", k=3).add("s", "Sink") \
            .link("c.out", "t.x").link("t.y", "s.x")
        run, result = run_graph(g, registry)
        assert result.stop_reason == "completed", result.error
        assert [(v, stamp) for v, stamp, _ in run.nodes["s"].received] == [(0, 0), (3, 1), (6, 2)]

    def test_size_never_set_fails_the_node(self, registry, run_graph):
        """A size attribute still unset at the first firing fails the node with a message naming it."""
        g = Graph().add("c", "Count", n=7).add("t", "ThinLater").add("s", "Sink") \
            .link("c.out", "t.x").link("t.y", "s.x")
        _, result = run_graph(g, registry)
        assert result.stop_reason == "failed" and result.error is not None and result.error.node_id == "t"
        assert "'period'" in str(result.error.cause)

    def test_described(self):
        """``describe`` and ``dnne nodes`` show each input's rule."""
        from toy_nodes import Sample

        inputs = Sample.describe()["inputs"]
        assert inputs["x"]["rule"] == "Every('k')" and inputs["w"]["rule"] == "Window('k')"
        from dnne.runtime.cli.nodes import format_node

        text = format_node(Sample.describe() | {"source": "toy"})
        assert "    x: Int [rule Every('k')] - " in text and "    w: Int [rule Window('k')] - " in text

    @pytest.mark.parametrize("body", [
        {"merge": True, "x": Input("Int", rule=Every(2))},
        {"x": Input("Int", fan_in=True, rule=Every(2))},
        {"x": Input("Int"), "y": Input("Int", primed=1, rule=Window(2))},
        {"x": Input("Int", rule=Window(2))},
        {"x": Input("Int", optional=True), "y": Input("Int", rule=Hold(2))},
        {"x": Input("Int", rule=Every("size")), "size": Param(float, 2.0, "not an int", ge=1)},
        {"x": Input("Int", rule=Every("size")), "size": Param(int, 2, "may be 0", ge=0, le=5)},
        {"x": Input("Int", rule=Every(0))},
    ])
    def test_bad_declarations_are_refused(self, body: dict[str, Any]):
        """Rules only on stamped streams of a join with an input telling the stamp, sizes of at least 1."""
        with pytest.raises(NodeDefinitionError):
            type("BadRule", (Node,), {"out": Output("Int"), **body})
