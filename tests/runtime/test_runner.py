"""The runner: channel policies and stats, errors, the deadlock watchdog, stop conditions, lifecycle, embedding."""
from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from toy_nodes import toy_registry

from dnne.runtime.errors import GraphError
from dnne.runtime.graph import Graph
from dnne.runtime.loading import load_graph
from dnne.runtime.node import Node
from dnne.runtime.ports import Input, Output
from dnne.runtime.runner import DeadlockError, GraphRun
from dnne.runtime.types import Token


class ScoreThenWork(Node):
    """One tick per trigger: sets the 'score' counter to the tick number, then adds 10 'work'."""

    trigger = Input("Trigger", "permission to tick", primed=1)
    tick = Output("Int", "the tick number", offset=1)

    async def compute(self, trigger: Token) -> Mapping[str, Any]:
        self.ctx.counters.set("score", float(self.firings))
        self.ctx.counters.add("work", 10)
        return {"tick": self.firings}


def pipeline(n: int = 5) -> Graph:
    return Graph().add("c", "Count", n=n).add("d", "Double").add("s", "Sink").link("c.out", "d.x").link("d.y", "s.x")


def ticker_loop(**params) -> Graph:
    return (Graph().add("t", "Ticker", **params).add("e", "Echo")
            .link("t.tick", "e.tick").link("e.done", "t.trigger"))


class TestChannelPolicies:
    def test_latest_drops_are_counted(self, registry, run_graph):
        """Under 'latest' a slow consumer loses old messages, and every loss is counted as a drop."""
        g = (Graph().add("c", "Count", n=60).add("s", "Sink", delay=0.002)
             .link("c.out", "s.x", capacity=1, policy="latest"))
        run, result = run_graph(g, registry)
        stats = result.channels["c.out -> s.x"]
        assert stats["messages"] == 60
        assert stats["drops"] > 0
        assert len(run.nodes["s"].received) + stats["drops"] == 60
        assert run.nodes["s"].received[-1][0] == 59

    def test_block_is_backpressure(self, registry, run_graph):
        """Under 'block' a fast producer waits for a slow consumer: nothing dropped, producer wait time recorded."""
        g = Graph().add("c", "Count", n=15).add("s", "Sink", delay=0.005).link("c.out", "s.x", capacity=1)
        run, result = run_graph(g, registry)
        stats = result.channels["c.out -> s.x"]
        assert stats["drops"] == 0
        assert [v for v, _, _ in run.nodes["s"].received] == list(range(15))
        assert stats["producer_wait_s"] > 0.02
        assert stats["max_depth"] == 1
        assert result.nodes["c"]["blocked_s"] > 0.02

    def test_channel_stats(self, registry, run_graph):
        """Channel stats count messages, bound the depth by the capacity, and time the consumer's waits."""
        g = (Graph().add("c", "Count", n=8, delay=0.005).add("s", "Sink")
             .link("c.out", "s.x", capacity=3))
        _, result = run_graph(g, registry)
        stats = result.channels["c.out -> s.x"]
        assert stats["messages"] == 8
        assert 1 <= stats["max_depth"] <= 3
        assert stats["consumer_wait_s"] > 0.01
        assert stats["depth"] == 0 and stats["drops"] == 0

    def test_a_node_woken_while_another_holds_the_loop_is_not_busy_meanwhile(self, registry, run_graph):
        """Busy time is the time a node runs: a sink woken together with a compute-bound node (20 ms a firing, the
        loop held), which the event loop runs first, waits for its turn blocked, not busy, though the watchdog sees
        it runnable at once."""
        g = (Graph().add("c", "Later", n=20, delay=0.002, wait=0.05).add("w", "Where", spin=0.02).add("s", "Sink")
             .link("c.out", "w.x").link("c.out", "s.x"))  # both consumers wait before the first message
        g.run["fuse_chains"] = False  # each node in its own task: w is woken first, so it runs first
        _, result = run_graph(g, registry)
        assert result.stop_reason == "completed"
        assert result.nodes["w"]["busy_s"] >= 0.3  # the loop was held for 20 x 20 ms
        assert result.nodes["s"]["busy_s"] < 0.1 * result.nodes["w"]["busy_s"], result.nodes["s"]
        assert result.nodes["s"]["blocked_s"] >= 0.3

    def test_fan_out_gives_each_subscriber_its_own_channel(self, registry, run_graph):
        """Fan-out: each subscriber gets every message on a channel of its own."""
        g = (Graph().add("c", "Count", n=7).add("s1", "Sink").add("s2", "Sink", delay=0.001)
             .link("c.out", "s1.x").link("c.out", "s2.x"))
        run, result = run_graph(g, registry)
        assert len(result.channels) == 2
        assert [v for v, _, _ in run.nodes["s1"].received] == [v for v, _, _ in run.nodes["s2"].received] == list(range(7))

    def test_producer_not_blocked_by_a_finished_consumer(self, registry, run_graph):
        """A producer feeding a join whose other input ran out is released, not reported as a deadlock."""
        g = (Graph().add("c", "Count", n=20).add("k", "Count", n=2).add("b", "Bias").add("s", "Sink")
             .link("c.out", "b.x", capacity=1).link("k.out", "b.bias").link("b.y", "s.x"))
        _, result = run_graph(g, registry, deadlock_grace_s=0.2)
        assert result.stop_reason == "completed", result.error
        assert result.channels["c.out -> b.x"]["drops"] > 0


class TestCycles:
    def test_loop_without_start_is_rejected(self, registry):
        """A loop with no primed input and no merge fed from outside fails validation with unstarted_loop."""
        from dnne.runtime.errors import GraphError

        g = (Graph().add("a", "Relay").add("b", "Relay").add("c", "Count").add("s", "Sink")
             .link("a.y", "b.x").link("b.y", "a.x").link("a.y", "s.x"))
        with pytest.raises(GraphError) as info:
            load_graph(g, registry=registry)
        issues = [i for i in info.value.errors if i.code == "unstarted_loop"]
        assert len(issues) == 1
        assert "a" in issues[0].message and "b" in issues[0].message

    def test_loop_started_by_merge_fed_from_outside(self, registry, run_graph):
        """A loop through a merge node fed from outside it validates and runs."""
        g = (Graph().add("src", "Count", n=1).add("m", "Merge").add("f", "Fail", after=50).add("s", "Sink")
             .link("src.out", "m.a").link("m.out", "f.x").link("f.y", "m.b").link("f.y", "s.x"))
        _, result = run_graph(g, registry)
        # the loop circulates one message until the 50th pass raises
        assert result.stop_reason == "failed"
        assert result.nodes["m"]["firings"] >= 50

    def test_self_loop_without_start_is_rejected(self, registry):
        """A node linked to itself, not primed, is an unstarted loop."""
        from dnne.runtime.errors import GraphError

        g = Graph().add("r", "Relay").link("r.y", "r.x")
        with pytest.raises(GraphError) as info:
            load_graph(g, registry=registry)
        assert [i.node for i in info.value.errors if i.code == "unstarted_loop"] == ["r"]

    def test_primed_loop_validates(self, registry):
        """A loop through a primed input validates without issues."""
        assert load_graph(ticker_loop(), registry=registry).warnings == []


class TestErrors:
    def test_failing_node_is_reported_with_id_type_and_cause(self, registry, run_graph):
        """A raising node stops the graph: 'failed', and the error names the node id, its type and the cause."""
        g = (Graph().add("c", "Forever").add("f", "Fail", after=3).add("s", "Sink")
             .link("c.out", "f.x").link("f.y", "s.x"))
        run, result = run_graph(g, registry)
        assert result.stop_reason == "failed" and result.failed
        assert result.error.node_id == "f" and result.error.node_type == "Fail" and result.error.phase == "run"
        assert isinstance(result.error.cause, ValueError)
        assert "'f'" in str(result.error) and "Fail" in str(result.error) and "boom" in str(result.error)
        assert result.summary()["error"]["node"] == "f"

    def test_every_set_up_node_is_torn_down_in_reverse_order(self, registry, run_graph):
        """After a failure, teardown runs for every node, in reverse setup order."""
        g = (Graph().add("c", "Forever").add("f", "Fail", after=2).add("s", "Sink")
             .link("c.out", "f.x").link("f.y", "s.x"))
        run, _ = run_graph(g, registry)
        log = run.context.shared("events", list)
        setups = [n for kind, n in log if kind == "setup"]
        teardowns = [n for kind, n in log if kind == "teardown"]
        assert setups == ["c", "f", "s"]
        assert teardowns == ["s", "f", "c"]

    def test_setup_failure_stops_before_running(self, registry, run_graph):
        """A node failing in setup is reported with phase 'setup'; nodes set up before it are torn down."""
        g = (Graph().add("c", "Count").add("f", "Fail", in_setup=True).add("s", "Sink")
             .link("c.out", "f.x").link("f.y", "s.x"))
        run, result = run_graph(g, registry)
        assert result.stop_reason == "failed"
        assert (result.error.node_id, result.error.phase) == ("f", "setup")
        log = run.context.shared("events", list)
        assert ("teardown", "c") in log and ("teardown", "s") not in log
        assert result.nodes["s"]["firings"] == 0

    def test_downstream_cancellations_are_not_blamed(self, registry, run_graph):
        """Only the failing node is blamed, even when other nodes were mid-wait when it failed."""
        g = (Graph().add("c", "Forever", delay=0.001).add("d", "Double").add("f", "Fail", after=5)
             .add("s", "Sink", delay=0.01).link("c.out", "d.x").link("d.y", "f.x").link("f.y", "s.x"))
        _, result = run_graph(g, registry)
        assert result.error.node_id == "f"
        assert result.warnings == []


class TestWatchdog:
    def test_deadlock_is_reported_with_waiting_nodes_and_channels(self, registry, run_graph):
        """A graph where every node waits on a channel fails with a DeadlockError naming the nodes and channels."""
        g = (Graph().add("src", "Count", n=0).add("m", "Merge").add("r", "Relay")
             .link("src.out", "m.a").link("m.out", "r.x").link("r.y", "m.b"))
        _, result = run_graph(g, registry, deadlock_grace_s=0.2)
        assert result.stop_reason == "failed"
        assert isinstance(result.error.cause, DeadlockError)
        message = str(result.error.cause)
        assert "m waits on" in message and "r waits on" in message
        assert "r.y -> m.b" in message and "m.out -> r.x" in message
        assert result.wall_time_s < 5

    def test_node_busy_in_a_thread_is_not_a_deadlock(self, registry, run_graph):
        """A node busy in asyncio.to_thread longer than the grace keeps the graph alive."""
        g = (Graph().add("c", "Count", n=1).add("w", "Slow", seconds=0.6).add("s", "Sink")
             .link("c.out", "w.x").link("w.y", "s.x"))
        run, result = run_graph(g, registry, deadlock_grace_s=0.2)
        assert result.stop_reason == "completed", result.error
        assert len(run.nodes["s"].received) == 1

    def test_sleeping_source_is_not_a_deadlock(self, registry, run_graph):
        """A source sleeping between messages (not blocked on a channel) is not a deadlock."""
        g = Graph().add("c", "Count", n=3, delay=0.3).add("s", "Sink").link("c.out", "s.x")
        _, result = run_graph(g, registry, deadlock_grace_s=0.1)
        assert result.stop_reason == "completed", result.error


class TestStopConditions:
    def test_stop_predicate(self, registry, run_graph):
        """run.stop stops the run when its counter reaches the value, for its reason, not solved."""
        g = ticker_loop(steps_per_tick=10)
        g.run["stop"] = {"counter": "work", ">=": 100, "reason": "enough_work"}
        _, result = run_graph(g, registry)
        assert result.stop_reason == "enough_work"
        assert result.counters["work"] == 100
        assert not result.solved

    def test_stop_predicates_any_holds(self, registry, run_graph):
        """Of a list of predicates the first that holds stops the run (default reason 'stop')."""
        g = ticker_loop(iterations=True, steps_per_tick=1)
        g.run["stop"] = [{"counter": "work", ">=": 1000}, {"counter": "iterations", ">": 6}]
        _, result = run_graph(g, registry)
        assert result.stop_reason == "stop"
        assert result.counters["iterations"] == 7 and result.counters["work"] == 7

    @pytest.mark.parametrize("op, value, ticks", [(">=", 5, 5), (">", 5, 6), ("==", 4, 4)])
    def test_comparisons(self, registry, run_graph, op, value, ticks):
        """Each comparison stops at the first tick where it holds."""
        g = ticker_loop(steps_per_tick=1)
        g.run["stop"] = {"counter": "work", op: value}
        _, result = run_graph(g, registry)
        assert result.counters["work"] == ticks

    def test_predicate_that_never_holds_does_not_stop(self, registry, run_graph):
        """A '<' predicate on a rising counter never holds; the other predicate on the same counter stops."""
        g = ticker_loop(returns=True)
        g.run["stop"] = [{"counter": "score", "<": 0, "reason": "low"}, {"counter": "score", ">=": 3, "reason": "high"}]
        _, result = run_graph(g, registry)
        assert result.stop_reason == "high" and result.counters["score"] == 3

    def test_registered_shorthand(self, registry, run_graph):
        """A node package's shorthand key stops like the predicate it stands for, with the key as reason."""
        g = ticker_loop(steps_per_tick=10)
        g.run["max_work"] = 100
        _, result = run_graph(g, registry)
        assert result.stop_reason == "max_work"
        assert result.counters["work"] == 100
        assert not result.solved
        assert result.summary()["work"] == 100

    def test_max_iterations_is_not_an_engine_key(self, registry):
        """Without a node package that registers it, a shorthand is an unknown run key with a code."""
        g = ticker_loop(iterations=True)
        g.run["max_iterations"] = 7
        with pytest.raises(GraphError) as info:
            load_graph(g, registry=registry)
        assert [issue.code for issue in info.value.errors] == ["bad_run_option"]

    def test_timeout(self, registry, run_graph):
        """A timeout written '0.3s' stops a run that would go on forever after about that long."""
        g = ticker_loop(delay=0.01)
        g.run["timeout"] = "0.3s"
        _, result = run_graph(g, registry)
        assert result.stop_reason == "timeout"
        assert 0.25 <= result.wall_time_s < 2

    def test_solved_predicate(self, registry, run_graph):
        """A predicate marked solved stops the run as solved, with the counter's best value recorded."""
        g = ticker_loop(returns=True)
        g.run["stop"] = {"counter": "score", ">=": 12, "reason": "goal", "solved": True}
        _, result = run_graph(g, registry)
        assert result.stop_reason == "goal" and result.solved
        assert result.counters["score"] == 12 and result.counters["best_score"] == 12

    def test_solved_shorthand(self, registry, run_graph):
        """A shorthand registered as solved stops the run as solved, for its key."""
        g = ticker_loop(returns=True)
        g.run["target_score"] = 12
        _, result = run_graph(g, registry)
        assert result.stop_reason == "target_score" and result.solved
        assert result.summary()["score"] == 12 and result.summary()["solved"] is True

    def test_solved_at_holds_the_counters_when_the_goal_was_reached(self, run_graph):
        """solved_at keeps the summary fields and the time of the moment the solved predicate held; counters that
        moved on before the run stopped are in the final summary only. An unsolved run has none."""
        reg = toy_registry()
        reg.add_node(ScoreThenWork)
        g = (Graph().add("t", "ScoreThenWork").add("e", "Echo").link("t.tick", "e.tick").link("e.done", "t.trigger"))
        g.run["target_score"] = 3
        _, result = run_graph(g, reg)
        assert result.solved and result.summary()["work"] == 30
        assert result.solved_at is not None and result.summary()["solved_at"] == result.solved_at
        assert {k: v for k, v in result.solved_at.items() if k != "wall_time_s"} == {"work": 20, "score": 3.0}
        # both to the summary's 3 decimals (solved_at is stored rounded; a toy run can end within a millisecond)
        assert 0 <= result.solved_at["wall_time_s"] <= result.summary()["wall_time_s"]
        g.run.pop("target_score")
        g.run["max_work"] = 30
        _, unsolved = run_graph(g, reg)
        assert not unsolved.solved and unsolved.solved_at is None and unsolved.summary()["solved_at"] is None

    def test_node_requested_stop(self, registry, run_graph):
        """A node calling ctx.request_stop() ends the run with 'node_stop'."""
        _, result = run_graph(ticker_loop(stop_after=4), registry)
        assert result.stop_reason == "node_stop" and not result.solved

    def test_completed_when_sources_finish(self, registry, run_graph):
        """With no stop condition, the run completes when every stream has ended."""
        _, result = run_graph(pipeline(), registry)
        assert result.stop_reason == "completed"
        assert result.error is None

    def test_first_reason_wins(self, registry, run_graph):
        """When two predicates hold on the same tick, the one whose counter moved first is reported."""
        g = ticker_loop(steps_per_tick=1, iterations=True)
        g.run["stop"] = [{"counter": "iterations", ">=": 3, "reason": "second"},
                         {"counter": "work", ">=": 3, "reason": "first"}]
        _, result = run_graph(g, registry)
        assert result.stop_reason == "first"


class TestLifecycle:
    def test_setup_in_dependency_order(self, registry, run_graph):
        """Setup runs upstream first; a downstream node reads an upstream declaration at setup."""
        g = (Graph().add("r", "Reader").add("s", "Sink").add("d", "Declarer", space=11)
             .link("d.out", "r.x").link("r.y", "s.x"))
        run, _ = run_graph(g, registry)
        assert run.nodes["r"].seen == 11
        setups = [n for kind, n in run.context.shared("events", list) if kind == "setup"]
        assert setups.index("d") < setups.index("r") < setups.index("s")

    def test_declaration_through_a_merge_in_a_loop(self, registry, run_graph):
        """An upstream declaration reaches a reader behind a merge node that closes a loop."""
        g = (Graph().add("r", "Reader").add("m", "Merge").add("f", "Fail", after=3).add("d", "Declarer", space=5)
             .link("d.out", "m.a").link("m.out", "r.x").link("r.y", "f.x").link("f.y", "m.b"))
        run, _ = run_graph(g, registry)
        assert run.nodes["r"].seen == 5
        setups = [n for kind, n in run.context.shared("events", list) if kind == "setup"]
        assert setups == ["d", "m", "r", "f"]

    def test_missing_declaration_is_none(self, registry, run_graph):
        """upstream() returns None when no upstream node declares the key."""
        g = Graph().add("c", "Count", n=1).add("r", "Reader").add("s", "Sink").link("c.out", "r.x").link("r.y", "s.x")
        run, _ = run_graph(g, registry)
        assert run.nodes["r"].seen is None


class TestEmbedding:
    def test_two_graphs_side_by_side(self, registry):
        """Two graphs run concurrently in one event loop with independent nodes, counters and results."""
        g1 = load_graph(ticker_loop(steps_per_tick=1), registry=registry)
        g1.run["max_work"] = 30
        g2 = load_graph(pipeline(9), registry=registry)
        r1, r2 = GraphRun(g1, registry), GraphRun(g2, registry)

        async def both():
            return await asyncio.gather(r1.execute(), r2.execute())

        res1, res2 = asyncio.run(both())
        assert res1.stop_reason == "max_work" and res1.counters["work"] == 30
        assert res2.stop_reason == "completed" and "work" not in res2.counters
        assert [v for v, _, _ in r2.nodes["s"].received] == [2 * i for i in range(9)]
        assert set(res1.channels).isdisjoint(res2.channels)

    def test_cancelling_the_awaiting_task_cancels_the_run(self, registry):
        """Cancelling the task that awaits a run raises CancelledError there, tears every node down, leaks no task."""
        graph = load_graph(Graph().add("c", "Forever").add("s", "Sink").link("c.out", "s.x"), registry=registry)
        graph_run = GraphRun(graph, registry)

        async def main():
            task = asyncio.create_task(graph_run.execute())
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0)
            return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

        leftover = asyncio.run(main())
        assert leftover == []
        teardowns = [n for kind, n in graph_run.context.shared("events", list) if kind == "teardown"]
        assert teardowns == ["s", "c"]
        assert len(graph_run.nodes["s"].received) > 0

    def test_run_function_in_a_running_loop(self, registry):
        """dnne.runtime.runner.run works inside the caller's event loop."""
        from dnne.runtime.runner import run

        graph = load_graph(pipeline(3), registry=registry)
        result = asyncio.run(run(graph, registry))
        assert result.stop_reason == "completed" and result.nodes["s"]["firings"] == 3
