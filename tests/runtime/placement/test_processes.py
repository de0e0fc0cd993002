"""Graphs split over worker processes: same results as in one process, backpressure across the boundary,
failures (a node in a worker, a killed worker, a missing interpreter) stop the run cleanly."""
from __future__ import annotations

import asyncio
import os
import signal
import sys
import time


from dnne.runtime.graph import Graph
from dnne.runtime.loading import load_graph
from dnne.runtime.runner import GraphRun, RunResult


def execute(graph: Graph, registry, placement: dict[str, str] | None = None, workers=None,
            timeout: float = 60, **options) -> tuple[GraphRun, RunResult]:
    graph = graph.copy()
    graph.placement = dict(placement or {})
    graph.workers = dict(workers or {})
    run = GraphRun(load_graph(graph, registry=registry), registry, **options)
    return run, asyncio.run(asyncio.wait_for(run.execute(), timeout))


def no_worker_left(run: GraphRun) -> bool:
    processes = [w.process for w in run.placement.workers.values() if w.process is not None]
    return all(p.returncode is not None for p in processes) and not any(
        os.path.exists(f"/proc/{p.pid}") and open(f"/proc/{p.pid}/stat").read().split()[2] != "Z" for p in processes)


def received(run: GraphRun, node_id: str) -> list:
    return run.nodes[node_id].received


class TestSameAsOneProcess:
    def test_pipeline_fan_in_routes_and_stamps(self, wreg):
        """Values, stamps and sources (fan-in sources named after the original producer; routes) are the same."""
        g = (Graph().add("a", "Count", n=6, group="g1").add("b", "Count", n=6, first=100).add("d", "Double")
             .add("s", "Sink").add("t", "Sink")
             .link("a.out", "d.x").link("d.y", "s.x", route="g1").link("b.out", "s.x").link("b.out", "t.x"))
        _, alone = execute(g, wreg)
        one, _ = execute(g, wreg)
        two, result = execute(g, wreg, {"d": "w1", "b": "w2", "t": "w2"})
        assert result.stop_reason == "completed", result.error
        assert sorted(received(two, "s")) == sorted(received(one, "s"))
        assert {src for _, _, src in received(two, "s")} == {"g1", "b"}
        assert set(result.channels) == set(alone.channels)
        assert result.channels["a.out -> d.x"]["messages"] == 6
        assert set(result.nodes) == {"a", "b", "d", "s", "t"}

    def test_declarations_cross_at_setup(self, wreg):
        g = Graph().add("p", "Declarer", space=42).add("r", "Reader").add("s", "Sink").link("p.out", "r.x") \
            .link("r.y", "s.x")
        run, result = execute(g, wreg, {"p": "w1"})
        assert result.stop_reason == "completed", result.error
        assert run.nodes["r"].seen == 42

    def test_counters_and_stop_conditions_cross(self, wreg):
        """A worker's counters reach the main process, whose stop conditions end the whole run."""
        g = ticker = (Graph().add("t", "Ticker", steps_per_tick=10).add("e", "Echo")
                      .link("t.tick", "e.tick").link("e.done", "t.trigger"))
        ticker.run = {"max_work": 200}
        run, result = execute(g, wreg, {"t": "w1"})
        assert result.stop_reason == "max_work", result.error
        assert result.counters["work"] >= 200
        assert no_worker_left(run)


    def test_a_windowed_mean_spans_every_process(self, wreg):
        """``observe`` samples travel: the mean is over both workers' samples, not whichever reported last."""
        g = (Graph().add("a", "Scores", value=1.0, count=2).add("b", "Scores", value=3.0, count=2)
             .add("s", "Sink").add("t", "Sink").link("a.out", "s.x").link("b.out", "t.x"))
        run, result = execute(g, wreg, {"a": "w1", "b": "w2"})
        assert result.stop_reason == "completed", result.error
        assert result.counters["score"] == 2.0
        assert sorted(run.counters.windows["score"]) == [1.0, 1.0, 3.0, 3.0]


class TestBackpressure:
    def test_a_fast_producer_waits_for_a_slow_consumer_in_another_process(self, wreg):
        g = Graph().add("c", "Tensors", n=30).add("s", "Sink", delay=0.01).link("c.out", "s.x", capacity=1)
        run, result = execute(g, wreg, {"s": "w1"})
        stats = result.channels["c.out -> s.x"]
        assert result.stop_reason == "completed", result.error
        assert stats["messages"] == 30 and stats["drops"] == 0
        assert stats["max_depth"] == 1
        assert stats["producer_wait_s"] > 0.1  # ~0.3 s of consumer time, most of it waited for by the producer
        assert result.nodes["s"]["firings"] == 30


class TestFailures:
    def test_a_deadlock_across_processes_is_reported_naming_every_part(self, wreg):
        """The watchdog sees the whole graph: a loop spanning two processes that nothing feeds is a deadlock."""
        g = (Graph().add("src", "Count", n=0).add("m", "Merge").add("r", "Relay")
             .link("src.out", "m.a").link("m.out", "r.x").link("r.y", "m.b"))
        run, result = execute(g, wreg, {"r": "w1"}, deadlock_grace_s=0.4, timeout=30)
        assert result.stop_reason == "failed"
        assert type(result.error.cause).__name__ == "DeadlockError"
        message = str(result.error.cause)
        assert "m waits on" in message and "worker 'w1' waits on [deadlock" in message
        assert "r waits on" in message  # the worker's own report names its node
        assert no_worker_left(run)

    def test_a_failing_node_in_a_worker_fails_the_run(self, wreg):
        g = (Graph().add("c", "Count", n=10).add("f", "Fail", after=3).add("s", "Sink")
             .link("c.out", "f.x").link("f.y", "s.x"))
        run, result = execute(g, wreg, {"f": "w1"})
        assert result.stop_reason == "failed"
        assert result.error.node_id == "f" and result.error.node_type == "Fail"
        assert "in worker 'w1': ValueError: boom at 2" in str(result.error)
        assert no_worker_left(run)

    def test_a_killed_worker_stops_the_run_with_its_name_and_everything_shuts_down(self, wreg):
        g = (Graph().add("c", "Forever", delay=0.005).add("p", "Pid").add("s", "Sink")
             .link("c.out", "p.x").link("p.y", "s.x"))
        g.placement = {"c": "w1", "p": "w1"}
        run = GraphRun(load_graph(g, registry=wreg), wreg)

        async def scenario() -> RunResult:
            task = asyncio.ensure_future(run.execute())
            while "s" not in run.nodes or len(run.nodes["s"].received) < 20:  # messages cross
                await asyncio.sleep(0.02)
            os.kill(run.placement.workers["w1"].process.pid, signal.SIGKILL)
            return await asyncio.wait_for(task, 15)

        started = time.perf_counter()
        result = asyncio.run(scenario())
        assert time.perf_counter() - started < 15
        assert result.stop_reason == "failed"
        assert result.error.node_id == "w1" and result.error.node_type == "worker"
        message = str(result.error)
        assert "worker 'w1' (nodes c, p) died: exit code -9 (SIGKILL)" in message
        events = run.context.shared("events", list)
        assert ("teardown", "s") in events  # the main process tore down
        assert no_worker_left(run)

    def test_a_missing_interpreter_fails_the_run_naming_the_worker(self, wreg):
        g = Graph().add("c", "Count").add("s", "Sink").link("c.out", "s.x")
        run, result = execute(g, wreg, {"s": "w1"}, {"w1": {"python": "py38"}}, timeout=20,
                              worker_python={"py38": "/nonexistent/python3.8"})
        assert result.stop_reason == "failed"
        assert result.error.node_id == "w1"
        assert "could not start /nonexistent/python3.8" in str(result.error)

    def test_a_worker_that_cannot_load_its_part_fails_the_run(self, wreg):
        """A node type the worker's registry does not know (registered in code only) is reported, not hung on."""
        from dnne.runtime.registry import NodeRegistry
        from toy_nodes import TOY_NODES

        registry = NodeRegistry()
        for cls in TOY_NODES:
            registry.add_node(cls)
        g = Graph().add("c", "Count").add("s", "Sink").link("c.out", "s.x")
        run, result = execute(g, registry, {"s": "w1"}, timeout=30)
        assert result.stop_reason == "failed"
        assert result.error.node_id == "w1" and "unknown node type 'Sink'" in str(result.error)
        assert no_worker_left(run)


def test_worker_uses_the_interpreter_the_user_allowed_under_the_files_alias(wreg):
    g = Graph().add("c", "Count", n=3).add("s", "Sink").link("c.out", "s.x")
    run, result = execute(g, wreg, {"s": "w1"}, {"w1": {"python": "mine"}}, worker_python={"mine": sys.executable})
    assert result.stop_reason == "completed", result.error
    assert run.placement.workers["w1"].python == sys.executable
