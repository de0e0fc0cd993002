"""Firing rules: streaming and config inputs, optional inputs, fan-in, merges, primed inputs, stamps."""
from __future__ import annotations

import itertools

import pytest

from dnne.runtime.graph import Graph
from dnne.runtime.io import AlignmentError


class TestStreamingInputs:
    def test_one_firing_per_message(self, registry, run_graph):
        """A single-input node fires once per message, in order."""
        g = Graph().add("c", "Count", n=10).add("d", "Double").add("s", "Sink").link("c.out", "d.x").link("d.y", "s.x")
        run, result = run_graph(g, registry)
        assert result.stop_reason == "completed"
        assert [v for v, _, _ in run.nodes["s"].received] == [2 * i for i in range(10)]
        assert result.nodes["d"]["firings"] == 10

    def test_join_takes_one_message_from_each_input(self, registry, run_graph):
        """A node with several streaming inputs fires once per complete set, pairing messages in order."""
        g = (Graph().add("a", "Count", n=6).add("b", "Count", n=4, first=100, stamp_from=1).add("add", "Add")
             .add("s", "Sink").link("a.out", "add.a").link("b.out", "add.b").link("add.total", "s.x"))
        run, result = run_graph(g, registry)
        assert result.stop_reason == "completed"
        assert [v for v, _, _ in run.nodes["s"].received] == [i + 100 + i for i in range(4)]

    def test_unstamped_messages_join_by_order(self, registry, run_graph):
        """Unstamped messages join in arrival order and the firing carries no stamp."""
        g = (Graph().add("a", "Count", n=3, stamped=False).add("b", "Count", n=3, stamped=False).add("add", "Add")
             .add("s", "Sink").link("a.out", "add.a").link("b.out", "add.b").link("add.total", "s.x"))
        run, _ = run_graph(g, registry)
        assert [(v, stamp) for v, stamp, _ in run.nodes["s"].received] == [(0, None), (2, None), (4, None)]


class TestConfigInputs:
    def test_config_taken_once_and_kept(self, registry, run_graph):
        """A config input (Model) is read once and reused by every later firing."""
        g = (Graph().add("w", "Weights", scale=3).add("c", "Count", n=5).add("m", "Scale").add("s", "Sink")
             .link("w.model", "m.model").link("c.out", "m.x").link("m.y", "s.x"))
        run, result = run_graph(g, registry)
        assert result.stop_reason == "completed"
        assert [v for v, _, _ in run.nodes["s"].received] == [0, 3, 6, 9, 12]
        assert result.channels["w.model -> m.model"]["messages"] == 1

    def test_config_never_sent_ends_the_node(self, registry, run_graph):
        """A node whose config input ends without a value never fires, and the run still completes."""
        g = (Graph().add("w", "Count", n=0).add("r", "Relay").add("c", "Count", n=3).add("m", "Scale")
             .add("s", "Sink")
             .link("w.out", "r.x").link("r.y", "m.model").link("c.out", "m.x").link("m.y", "s.x"))
        run, result = run_graph(g, registry)
        assert result.stop_reason == "completed"
        assert result.nodes["m"]["firings"] == 0
        assert run.nodes["s"].received == []
        assert result.channels["r.y -> m.model"]["messages"] == 0


class TestOptionalInputs:
    def test_unlinked_optional_input_is_not_required(self, registry, run_graph):
        """An unlinked optional input takes the compute default and does not hold firings back."""
        g = Graph().add("c", "Count", n=3).add("b", "Bias").add("s", "Sink").link("c.out", "b.x").link("b.y", "s.x")
        run, _ = run_graph(g, registry)
        assert [v for v, _, _ in run.nodes["s"].received] == [0, 1, 2]

    def test_linked_optional_input_is_required_at_every_firing(self, registry, run_graph):
        """A linked optional input is needed by every firing: firings stop when it runs out."""
        g = (Graph().add("c", "Count", n=5).add("k", "Count", n=2, first=10).add("b", "Bias").add("s", "Sink")
             .link("c.out", "b.x").link("k.out", "b.bias").link("b.y", "s.x"))
        run, _ = run_graph(g, registry)
        assert [v for v, _, _ in run.nodes["s"].received] == [10, 12]

    def test_linked_optional_third_term(self, registry, run_graph):
        """Add's optional ``c`` is used when linked."""
        g = (Graph().add("a", "Count", n=2).add("b", "Count", n=2, stamp_from=1).add("k", "Count", n=2, first=5)
             .add("add", "Add").add("s", "Sink")
             .link("a.out", "add.a").link("b.out", "add.b").link("k.out", "add.c").link("add.total", "s.x"))
        run, _ = run_graph(g, registry)
        assert [v for v, _, _ in run.nodes["s"].received] == [5, 8]


class TestFanIn:
    def test_messages_carry_their_source(self, registry, run_graph):
        """On a fan-in input each message carries its source: the producer's id when it names none."""
        g = (Graph().add("a", "Count", n=3).add("b", "Count", n=2, first=10).add("s", "Sink")
             .link("a.out", "s.x").link("b.out", "s.x"))
        run, result = run_graph(g, registry)
        got = run.nodes["s"].received
        assert sorted((v, src) for v, _, src in got) == [(0, "a"), (1, "a"), (2, "a"), (10, "b"), (11, "b")]
        assert result.nodes["s"]["firings"] == 5

    def test_explicit_source_is_kept(self, registry, run_graph):
        """A source named by the producer is kept through a fan-in input."""
        g = Graph().add("a", "Count", n=2, group="g1").add("s", "Sink").link("a.out", "s.x")
        run, _ = run_graph(g, registry)
        assert [src for _, _, src in run.nodes["s"].received] == ["g1", "g1"]

    def test_join_pairs_messages_of_the_same_source(self, registry, run_graph):
        """Fan-in joins pair the messages of one source, whatever order the sources arrive in."""
        g = (Graph().add("x1", "Count", n=3, group="g1").add("x2", "Count", n=3, first=10, group="g2")
             .add("y2", "Count", n=3, first=20, group="g2").add("y1", "Count", n=3, first=30, group="g1")
             .add("p", "Pair")
             .link("x1.out", "p.x").link("x2.out", "p.x").link("y2.out", "p.y").link("y1.out", "p.y"))
        run, _ = run_graph(g, registry)
        got = run.nodes["p"].received
        assert sorted(got) == sorted([(i, 30 + i, "g1") for i in range(3)] + [(10 + i, 20 + i, "g2") for i in range(3)])

    def test_route_delivers_one_source(self, registry, run_graph):
        """A link with a route delivers only the messages of that source."""
        g = (Graph().add("a", "Count", n=3, group="g1").add("b", "Count", n=3, group="g2").add("m", "Merge")
             .add("s", "Sink").link("a.out", "m.a").link("b.out", "m.b").link("m.out", "s.x", route="g2"))
        run, _ = run_graph(g, registry)
        assert [src for _, _, src in run.nodes["s"].received] == ["g2"] * 3


class TestMerge:
    def test_merge_forwards_every_message_from_every_input(self, registry, run_graph):
        """A merge node forwards every message of every input, none lost, each input's order kept."""
        n = 400
        g = (Graph().add("a", "Count", n=n).add("b", "Count", n=n, first=10_000).add("c", "Count", n=n, first=20_000)
             .add("m", "Merge").add("s", "Sink")
             .link("a.out", "m.a").link("b.out", "m.b", capacity=3).link("c.out", "m.c", capacity=1)
             .link("m.out", "s.x"))
        run, result = run_graph(g, registry)
        values = [v for v, _, _ in run.nodes["s"].received]
        assert sorted(values) == sorted(list(range(n)) + list(range(10_000, 10_000 + n)) + list(range(20_000, 20_000 + n)))
        for base in (0, 10_000, 20_000):
            mine = [v for v in values if base <= v < base + n]
            assert mine == sorted(mine)
        assert result.nodes["m"]["firings"] == 3 * n

    def test_merge_interleaves_inputs(self, registry, run_graph):
        """A merge node takes inputs in turn rather than draining one first: no input runs more than twice in a row
        while both have messages waiting."""
        g = (Graph().add("a", "Count", n=50).add("b", "Count", n=50, first=100).add("m", "Merge").add("s", "Sink")
             .link("a.out", "m.a").link("b.out", "m.b").link("m.out", "s.x"))
        run, _ = run_graph(g, registry)
        inputs = ["b" if v >= 100 else "a" for v, _, _ in run.nodes["s"].received][:80]
        longest = max(len(list(group)) for _, group in itertools.groupby(inputs))
        assert longest <= 2, "".join(inputs)

    def test_merge_with_one_linked_input(self, registry, run_graph):
        """A merge node with only one input linked forwards it and ends when it ends."""
        g = Graph().add("a", "Count", n=4).add("m", "Merge").add("s", "Sink").link("a.out", "m.b").link("m.out", "s.x")
        run, result = run_graph(g, registry)
        assert [v for v, _, _ in run.nodes["s"].received] == [0, 1, 2, 3]
        assert result.stop_reason == "completed"


class TestPrimedInputs:
    def test_primed_loop_starts_by_itself(self, registry, run_graph):
        """A loop through a primed input runs: the start token fires the first tick."""
        g = (Graph().add("t", "Ticker", stop_after=25).add("e", "Echo")
             .link("t.tick", "e.tick").link("e.done", "t.trigger"))
        _, result = run_graph(g, registry)
        assert result.stop_reason == "node_stop"
        assert result.nodes["t"]["firings"] == 25
        assert result.nodes["e"]["firings"] >= 24

    def test_start_token_is_stamped_zero(self, registry, run_graph):
        """The start token carries reason 'start' and stamp 0; later triggers are the loop's own, and the outputs
        after the start token are stamped 1."""
        g = (Graph().add("t", "Ticker", stop_after=6).add("s", "Sink").add("e", "Echo")
             .link("t.tick", "s.x").link("t.tick", "e.tick").link("e.done", "t.trigger"))
        run, _ = run_graph(g, registry)
        triggers = run.nodes["t"].triggers
        assert triggers[0] == ("start", 0)
        assert all(reason == "transition" for reason, _ in triggers[1:]) and len(triggers) >= 6
        stamps = [stamp for _, stamp, _ in run.nodes["s"].received]
        assert stamps[:3] == [1, 2, 3]


class TestStamps:
    def test_offset_joins_k_with_k_plus_one(self, registry, run_graph):
        """A port offset of 1 joins the message stamped k + 1 with the one stamped k; the firing is stamped k."""
        g = (Graph().add("a", "Count", n=3).add("b", "Count", n=3, stamp_from=1).add("add", "Add").add("s", "Sink")
             .link("a.out", "add.a").link("b.out", "add.b").link("add.total", "s.x"))
        run, result = run_graph(g, registry)
        assert result.stop_reason == "completed"
        assert [stamp for _, stamp, _ in run.nodes["s"].received] == [0, 1, 2]

    def test_disagreeing_stamps_fail_naming_both_ports(self, registry, run_graph):
        """Stamps that disagree after offsets fail the node with an AlignmentError naming both ports."""
        g = (Graph().add("a", "Count", n=3).add("b", "Count", n=3, stamp_from=0).add("add", "Add").add("s", "Sink")
             .link("a.out", "add.a").link("b.out", "add.b").link("add.total", "s.x"))
        _, result = run_graph(g, registry)
        assert result.stop_reason == "failed"
        assert result.error is not None and result.error.node_id == "add"
        assert isinstance(result.error.cause, AlignmentError)
        message = str(result.error.cause)
        assert "'a'" in message and "'b'" in message

    @pytest.mark.parametrize("shift", [2, 5])
    def test_any_shift_is_detected(self, registry, run_graph, shift):
        """A stream shifted by more than its declared offset is never silently joined."""
        g = (Graph().add("a", "Count", n=4).add("b", "Count", n=4, stamp_from=shift).add("add", "Add")
             .add("s", "Sink").link("a.out", "add.a").link("b.out", "add.b").link("add.total", "s.x"))
        run, result = run_graph(g, registry)
        assert result.stop_reason == "failed"
        assert run.nodes["s"].received == []


def chain(n: int = 40, **where: object) -> Graph:
    """Count -> Where -> Double -> Where: single-link nodes, the last with no output linked, a chain that fuses."""
    return (Graph().add("c", "Count", n=n).add("w1", "Where", **where).add("d", "Double").add("w2", "Where")
            .link("c.out", "w1.x").link("w1.y", "d.x").link("d.y", "w2.x"))


class TestFusedChains:
    """A node whose one streaming input has one link fires in its producer's task (``firing.fire_fused``)."""

    def test_a_chain_fires_in_its_producers_task_with_the_same_messages_and_counts(self, registry, run_graph):
        """Fused and unfused (``fuse_chains: false``) runs deliver the same values, stamps and sources, fire each
        node as often and count the same messages on every channel; fused, the chain fires in the source's task."""
        fused_run, fused = run_graph(chain(), registry)
        plain_graph = chain()
        plain_graph.run["fuse_chains"] = False
        plain_run, plain = run_graph(plain_graph, registry)
        assert fused.stop_reason == plain.stop_reason == "completed"
        assert fused_run.nodes["w2"].received == plain_run.nodes["w2"].received == [(2 * i, i, None) for i in range(40)]
        for node_id in ("w1", "d", "w2"):
            assert fused.nodes[node_id]["firings"] == plain.nodes[node_id]["firings"] == 40
        for name, stats in plain.channels.items():
            assert fused.channels[name]["messages"] == stats["messages"] == 40, name
            assert fused.channels[name]["drops"] == stats["drops"] == 0, name
        assert set(plain_run.nodes["w1"].tasks) == {"w1"} and set(plain_run.nodes["w2"].tasks) == {"w2"}
        # the first messages may find w1 still starting (its own task takes them); from then on c fires it
        assert fused_run.nodes["w1"].tasks.count("c") >= 35 and fused_run.nodes["w2"].tasks.count("c") >= 35

    def test_a_config_input_fuses_once_it_holds_a_value(self, registry, run_graph):
        """A node with a config input fires in its producer's task on the config's value."""
        g = (Graph().add("w", "Weights", scale=3).add("c", "Count", n=20).add("m", "Scale").add("r", "Where")
             .link("w.model", "m.model").link("c.out", "m.x").link("m.y", "r.x"))
        run, result = run_graph(g, registry)
        assert [v for v, _, _ in run.nodes["r"].received] == [3 * i for i in range(20)]
        assert run.nodes["r"].tasks.count("c") >= 15

    def test_a_failure_in_a_fused_node_is_that_nodes(self, registry, run_graph):
        """A fused node that raises fails the run under its own id, not its producer's."""
        g = (Graph().add("c", "Count", n=20).add("w", "Where").add("f", "Fail", after=10)
             .link("c.out", "w.x").link("w.y", "f.x"))
        run, result = run_graph(g, registry)
        assert result.stop_reason == "failed"
        assert result.error is not None and result.error.node_id == "f" and result.error.phase == "run"
        assert isinstance(result.error.cause, ValueError) and "boom" in str(result.error.cause)
        assert run.nodes["w"].tasks.count("c") >= 5  # the chain was fused when f raised

    def test_a_fused_firing_is_busy_time_of_the_node_that_fired(self, registry, run_graph):
        """Time spent in a fused node's compute counts as its busy time, not as time it was blocked, and not as
        busy time of the producer whose task ran it, as if it had fired in its own task."""
        run, result = run_graph(chain(n=10, spin=0.02), registry)
        assert run.nodes["w1"].tasks.count("c") >= 8
        assert result.nodes["w1"]["busy_s"] >= 0.15
        assert result.nodes["w1"]["blocked_s"] < 0.1
        assert result.nodes["c"]["busy_s"] < 0.1

    def test_a_fused_firing_that_its_nodes_own_task_wakes_during_is_still_busy_time(self, registry, run_graph):
        """A node fired in its producer's task whose compute awaits (350 ms) while a message from another producer
        wakes its own task: its wait ends where the fused firing began, so that firing is its busy time whole."""
        g = (Graph().add("p", "Later", n=1, wait=0.02).add("q", "Later", n=1, wait=0.25, first=100)
             .add("x", "Sink", delay=0.35).link("p.out", "x.x").link("q.out", "x.x"))
        run, result = run_graph(g, registry)
        assert [v for v, _, _ in run.nodes["x"].received] == [0, 100]
        assert result.nodes["x"]["blocked_s"] < 0.15  # until p's message at 20 ms, not q's at 250 ms
        assert result.nodes["x"]["busy_s"] >= 0.69  # two firings of 350 ms

    @pytest.mark.parametrize("consumer", ["Sink", "Slow"])
    def test_a_fused_nodes_wait_on_its_full_output_is_blocked_time(self, registry, run_graph, consumer):
        """A node fired in its producer's task that sends more than its output holds (three messages, capacity 1,
        a consumer taking 100 ms a message, on a fan-in input or not) waits on that output inside the fused firing:
        blocked time. The consumer takes no more from the full channel than its one firing."""
        params = {"delay": 0.1} if consumer == "Sink" else {"seconds": 0.1}
        g = (Graph().add("p", "Later", n=1, wait=0.02).add("x", "EmitReturn").add("s", consumer, **params)
             .link("p.out", "x.x").link("x.y", "s.x", capacity=1))
        run, result = run_graph(g, registry)
        assert result.nodes["s"]["firings"] == 3
        if consumer == "Sink":
            assert [v for v, _, _ in run.nodes["s"].received] == [0, 0, 0]
        assert run.nodes["x"].tasks == ["p"]
        assert result.nodes["x"]["blocked_s"] >= 0.08, result.nodes["x"]  # the third fits once the first 100 ms end

    def test_a_full_output_leaves_the_firing_to_the_nodes_own_task(self, registry, run_graph):
        """Behind a slow consumer the chain's outputs fill: the node then fires in its own task, waiting on the
        full channel as itself, and every message still arrives once, in order."""
        g = (Graph().add("c", "Count", n=12).add("w", "Where").add("s", "Sink", delay=0.01)
             .link("c.out", "w.x").link("w.y", "s.x", capacity=1))
        run, result = run_graph(g, registry)
        assert result.stop_reason == "completed"
        assert [v for v, _, _ in run.nodes["s"].received] == list(range(12))
        assert "w" in run.nodes["w"].tasks
        assert result.channels["w.y -> s.x"]["producer_wait_s"] > 0

    def test_firings_stay_in_order_when_the_nodes_own_task_wakes_meanwhile(self, registry, run_graph):
        """While a producer fires a node whose compute awaits, the node's own task, woken by another producer, takes
        no firing: the producer's loop fires what completes, in the order the join gives."""
        g = (Graph().add("c1", "Later", n=1, wait=0.02).add("c2", "Later", n=10, first=100, wait=0.025)
             .add("s", "Sink", delay=0.01).link("c1.out", "s.x").link("c2.out", "s.x"))
        run, result = run_graph(g, registry)
        assert result.stop_reason == "completed"
        assert [v for v, _, _ in run.nodes["s"].received] == [0, *range(100, 110)]

    def test_a_fused_join_keeps_its_inputs_bounded(self, registry, run_graph):
        """A join fired by its producers holds no more on an input than the link's capacity: a fast producer waits
        for the slow one, as it does when the join fires in its own task."""
        g = (Graph().add("fast", "Count", n=200).add("slow", "Count", n=200, first=1000, delay=0.001).add("add", "Add")
             .add("w", "Where").link("fast.out", "add.a", capacity=1).link("slow.out", "add.b", capacity=1)
             .link("add.total", "w.x"))
        g.nodes["slow"].params["stamp_from"] = 1
        run, result = run_graph(g, registry)
        assert result.stop_reason == "completed" and result.nodes["add"]["firings"] == 200
        assert result.channels["fast.out -> add.a"]["max_depth"] <= 1
        assert result.nodes["fast"]["blocked_s"] > 0.05

    def test_a_fused_node_emitting_from_compute_never_blocks_its_producer(self, registry, run_graph):
        """A node fired in its producer's task that sends more than its output holds (three ``emit`` calls, capacity
        1) does not stall that producer, which a join downstream (in its own task) still needs: the run completes
        as unfused."""
        g = (Graph().add("p", "Steps", n=5, wait=0.02).add("e", "Triple").add("add", "OwnBias").add("w", "Where")
             .link("p.x", "e.x").link("e.y", "add.x", capacity=1).link("p.b", "add.bias", capacity=1)
             .link("add.y", "w.x"))
        run, result = run_graph(g, registry, deadlock_grace_s=1.0)
        assert result.stop_reason == "completed", result.error
        assert [v for v, _, _ in run.nodes["w"].received] == [10 * i + copy + i for i in range(5) for copy in range(3)]

    def test_the_last_subscriber_that_may_fuse_fires_in_the_producers_task(self, registry, run_graph):
        """A message to several subscribers fires the last one that may fuse in the producer's task, after every
        other message is in its channel, also when a later subscriber fires only in its own task."""
        g = (Graph().add("c", "Count", n=20).add("w", "Where").add("o", "OwnBias")
             .link("c.out", "w.x").link("c.out", "o.x", capacity=32))
        run, result = run_graph(g, registry)
        assert result.stop_reason == "completed"
        assert [v for v, _, _ in run.nodes["w"].received] == list(range(20))
        assert result.nodes["o"]["firings"] == 20
        assert run.nodes["w"].tasks.count("c") >= 15

    def test_a_message_that_waits_for_room_sends_the_fusing_one_first(self, registry, run_graph):
        """A subscriber that may fuse, listed before one whose full channel makes the producer wait, gets its message
        before that wait (its output is what frees the room: a delay line feeding the full node's other input), so
        the run completes as unfused instead of deadlocking."""
        g = (Graph().add("a", "Count", n=20, stamped=False).add("b", "Delay").add("c", "OwnBias").add("s", "Sink")
             .link("a.out", "b.x", capacity=10).link("a.out", "c.x", capacity=1).link("b.y", "c.bias", capacity=1)
             .link("c.y", "s.x"))
        run, result = run_graph(g, registry, deadlock_grace_s=1.0)
        assert result.stop_reason == "completed", result.error
        assert [v for v, _, _ in run.nodes["s"].received] == [2 * i for i in range(18)]

    def test_a_merge_whose_other_inputs_ended_fires_in_the_producers_task(self, registry, run_graph):
        """A merge fires in a producer's task once its other inputs can bring nothing more (while they can, it takes
        its inputs in turn in its own task: ``TestMerge``)."""
        g = (Graph().add("a", "Count", n=1).add("b", "Later", n=30, first=100, wait=0.05).add("m", "Merge")
             .add("s", "Sink").link("a.out", "m.a").link("b.out", "m.b").link("m.out", "s.x"))
        run, result = run_graph(g, registry)
        assert result.stop_reason == "completed"
        assert [v for v, _, _ in run.nodes["s"].received] == [0, *range(100, 130)]
        assert run.nodes["m"].tasks.count("b") >= 25

    def test_a_fan_in_merge_fired_in_its_producers_task_names_each_message_by_its_link(self, registry, run_graph):
        """Once its other link has ended, a fan-in merge fires on each message in the producer's task, under the
        name of the link it came through, as in its own task (fused and unfused runs agree)."""
        def merged() -> Graph:
            return (Graph().add("a", "Count", n=1).add("b", "Later", n=20, first=100, wait=0.05)
                    .add("m", "FanMerge").add("s", "Sink").link("a.out", "m.x").link("b.out", "m.x")
                    .link("m.out", "s.x"))

        fused_run, fused = run_graph(merged(), registry)
        plain_graph = merged()
        plain_graph.run["fuse_chains"] = False
        plain_run, plain = run_graph(plain_graph, registry)
        assert fused.stop_reason == plain.stop_reason == "completed"
        expected = [(0, 0, "a"), *((100 + i, i, "b") for i in range(20))]
        assert fused_run.nodes["s"].received == plain_run.nodes["s"].received == expected
        assert fused_run.nodes["m"].tasks.count("b") >= 15

    def test_a_merge_with_another_live_link_on_the_same_input_fires_in_its_own_task(self, registry, run_graph):
        """A merge whose fan-in input has another link still open takes its messages in its own task."""
        g = (Graph().add("a", "Count", n=20, delay=0.005).add("b", "Count", n=20, first=100, delay=0.005)
             .add("m", "FanMerge").add("s", "Sink").link("a.out", "m.x").link("b.out", "m.x").link("m.out", "s.x"))
        run, result = run_graph(g, registry)
        assert result.stop_reason == "completed"
        assert sorted(v for v, _, _ in run.nodes["s"].received) == [*range(20), *range(100, 120)]
        assert run.nodes["m"].tasks.count("m") >= 30

    def test_a_node_firing_through_fire_ready_fires_in_its_producers_task(self, registry, run_graph):
        """A node with its own loop that fires through ``fire_ready`` (and waits through ``wait_idle``) is fired in
        its producer's task, with the same messages, stamps and counts as in its own task."""
        def served() -> Graph:
            return (Graph().add("c", "Count", n=40).add("srv", "Server").add("w", "Where")
                    .link("c.out", "srv.x").link("srv.y", "w.x"))

        fused_run, fused = run_graph(served(), registry)
        plain_graph = served()
        plain_graph.run["fuse_chains"] = False
        plain_run, plain = run_graph(plain_graph, registry)
        assert fused.stop_reason == plain.stop_reason == "completed"
        assert fused_run.nodes["w"].received == plain_run.nodes["w"].received == [(i, i, "c") for i in range(40)]
        assert fused.nodes["srv"]["firings"] == plain.nodes["srv"]["firings"] == 40
        assert set(plain_run.nodes["srv"].tasks) == {"srv"}
        assert fused_run.nodes["srv"].tasks.count("c") >= 35

    def test_a_node_firing_through_fire_ready_never_blocks_its_producer(self, registry, run_graph):
        """A node with its own loop fired in its producer's task that sends more than its output holds (three
        messages a value, capacity 1) does not stall that producer, which a join downstream still needs: the run
        completes as unfused."""
        g = (Graph().add("p", "Steps", n=5, wait=0.02).add("e", "Server", copies=3).add("add", "OwnBias")
             .add("w", "Where").link("p.x", "e.x").link("e.y", "add.x", capacity=1)
             .link("p.b", "add.bias", capacity=1).link("add.y", "w.x"))
        run, result = run_graph(g, registry, deadlock_grace_s=1.0)
        assert result.stop_reason == "completed", result.error
        assert [v for v, _, _ in run.nodes["w"].received] == [2 * i for i in range(5) for _ in range(3)]
        assert "p" in run.nodes["e"].tasks
