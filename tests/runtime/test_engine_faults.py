"""Fault injection into the engine itself, on toy nodes: a teardown that raises, hooks that raise, a restore that
is refused, a second Ctrl-C, and the grace of a stop point that never comes."""
from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest
from toy_nodes import TOY_NODES, Recorded, register_toy_vocabulary

from dnne.runtime import checkpoint
from dnne.runtime.checkpoint import CheckpointError
from dnne.runtime.cli.shared import install_signal_handlers
from dnne.runtime.graph import Graph
from dnne.runtime.loading import load_graph
from dnne.runtime.ports import Input, Output, Param
from dnne.runtime.registry import NodeRegistry
from dnne.runtime.runner import GraphRun


class BadTeardown(Recorded):
    """Passes values on; its teardown raises."""

    x = Input("Any", "in")
    y = Output("Any", "out")

    async def compute(self, x: Any) -> dict[str, Any]:
        return {"y": x}

    async def teardown(self) -> None:
        await super().teardown()
        raise OSError("could not close the device")


class Stateful(Recorded):
    """A source of ``n`` values with a state (its next value)."""

    out = Output("Int", "values")
    n = Param(int, 3, "how many", ge=0, le=100)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.next = 0

    async def run(self) -> None:
        while self.next < self.n:
            self.next += 1
            await self.emit("out", self.next, stamp=self.next)

    def state_dict(self) -> dict[str, int]:
        return {"next": self.next}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.next = state["next"]


class NeverConsistent(Recorded):
    """Declares stop points but works forever without reaching one, adding work as it goes."""

    out = Output("Int", "ticks")

    async def setup(self) -> None:
        await super().setup()
        self.ctx.use_stop_points()

    async def run(self) -> None:
        while True:
            self.ctx.counters.add("work", 1)
            await asyncio.sleep(0.005)


class Consistent(NeverConsistent):
    """Reaches a stop point every 5 units of work."""

    async def run(self) -> None:
        while True:
            self.ctx.counters.add("work", 1)
            if self.ctx.counters.get("work") % 5 == 0:
                await self.ctx.stop_point()
            await asyncio.sleep(0.005)


class SlowUpdates(NeverConsistent):
    """Leaves its stop point for an update that takes 0.3 s in a thread (counted when it starts and ends), then
    reaches the next; with ``updates`` given, ends after that many instead of reaching the last stop point."""

    updates = Param(int, 0, "end after this many updates (0: never)", ge=0, le=100)

    async def run(self) -> None:
        while True:
            self.ctx.leave_stop_point()
            self.ctx.counters.add("started", 1)
            await asyncio.to_thread(time.sleep, 0.3)
            self.ctx.counters.add("finished", 1)
            if self.ctx.counters.get("finished") == self.updates:
                return
            await self.ctx.stop_point()


class HeldWork(Recorded):
    """Declares no stop points but holds a stop over each 2 ms piece of work in a thread (as an evaluation
    does), counting them in ``held``."""

    async def run(self) -> None:
        while True:
            self.ctx.leave_stop_point()
            await asyncio.to_thread(time.sleep, 0.002)
            self.ctx.counters.add("held", 1)
            await self.ctx.stop_point()


@pytest.fixture(scope="module")
def reg() -> NodeRegistry:
    registry = NodeRegistry()
    for cls in (*TOY_NODES, BadTeardown, Stateful, NeverConsistent, Consistent, SlowUpdates, HeldWork):
        registry.add_node(cls)
    register_toy_vocabulary(registry)
    return registry


def execute(graph: Graph, registry: NodeRegistry, **options: Any) -> tuple[GraphRun, Any]:
    run = GraphRun(load_graph(graph, registry=registry), registry, **options)
    return run, asyncio.run(asyncio.wait_for(run.execute(), 20))


class Hook:
    """A run hook that records calls and may raise in either."""

    def __init__(self, fail_start: bool = False, fail_stop: bool = False) -> None:
        self.calls: list[str] = []
        self.fail_start, self.fail_stop = fail_start, fail_stop

    def on_start(self, run: GraphRun) -> None:
        self.calls.append("start")
        if self.fail_start:
            raise RuntimeError("hook start broke")

    def on_stop(self, run: GraphRun) -> None:
        self.calls.append("stop")
        if self.fail_stop:
            raise RuntimeError("hook stop broke")


def chain() -> Graph:
    return Graph().add("c", "Count", n=3).add("b", "BadTeardown").add("s", "Sink").link("c.out", "b.x").link("b.y", "s.x")


def test_a_teardown_that_raises_fails_the_run_and_every_other_node_is_still_torn_down(reg):
    """The failure names the node and the phase; the nodes set up before it are torn down after it, in reverse."""
    run, result = execute(chain(), reg)
    assert result.error is not None and result.error.node_id == "b" and result.error.phase == "teardown"
    assert isinstance(result.error.cause, OSError)
    teardowns = [node for kind, node in run.context.shared("events", list) if kind == "teardown"]
    assert teardowns == list(reversed(run.order))


def test_a_hook_that_fails_at_stop_is_a_warning_and_the_other_hooks_run(reg):
    """on_stop raising is reported as a warning; the next hook's on_stop still runs."""
    first, second = Hook(fail_stop=True), Hook()
    _, result = execute(Graph().add("c", "Count", n=2).add("s", "Sink").link("c.out", "s.x"), reg,
                        hooks=[first, second])
    assert first.calls == ["start", "stop"] and second.calls == ["start", "stop"]
    assert result.error is None and any("hook stop broke" in w for w in result.warnings)


def test_a_hook_that_fails_at_start_tears_everything_down(reg):
    """on_start raising ends the run with that error, after every node was torn down and on_stop was called."""
    hook = Hook(fail_start=True)
    run = GraphRun(load_graph(Graph().add("c", "Count", n=2).add("s", "Sink").link("c.out", "s.x"), registry=reg),
                   reg, hooks=[hook])
    with pytest.raises(RuntimeError, match="hook start broke"):
        asyncio.run(run.execute())
    kinds = [kind for kind, _ in run.context.shared("events", list)]
    assert kinds.count("setup") == 2 and kinds.count("teardown") == 2
    assert hook.calls == ["start", "stop"]


def test_a_restore_that_is_refused_tears_everything_down(reg):
    """A checkpoint of another graph is refused at restore (CheckpointError), after setup; nothing runs, every
    node is torn down."""
    graph = Graph().add("c", "Stateful", n=3).add("s", "Sink").link("c.out", "s.x")
    first, _ = execute(graph, reg)
    state = checkpoint.collect(first)
    other = Graph().add("x", "Stateful", n=3).add("s", "Sink").link("x.out", "s.x")
    run = GraphRun(load_graph(other, registry=reg), reg, restore=state)
    with pytest.raises(CheckpointError, match="x: checkpoint has nothing, graph has Stateful"):
        asyncio.run(run.execute())
    kinds = [kind for kind, _ in run.context.shared("events", list)]
    assert kinds.count("teardown") == 2 and run.nodes["s"].received == []


def test_a_restore_continues_from_the_saved_state(reg):
    """Restored, the stateful source goes on from its saved position: the values before it are not sent again."""
    graph = Graph().add("c", "Stateful", n=5).add("s", "Sink").link("c.out", "s.x")
    first, _ = execute(graph, reg)
    state = checkpoint.collect(first)
    state["nodes"]["c"] = {"next": 3}
    run, result = execute(graph, reg, restore=state)
    assert result.error is None and [v for v, _, _ in run.nodes["s"].received] == [4, 5]


def test_the_second_signal_aborts():
    """The first SIGINT/SIGTERM stops gracefully, the second aborts, a third changes nothing more."""
    calls: list[str] = []

    class Loop:
        handlers: dict[int, Any] = {}

        def add_signal_handler(self, signum: int, callback: Any, *args: Any) -> None:
            self.handlers[signum] = (callback, args)

    loop = Loop()
    install_signal_handlers(loop, lambda: calls.append("graceful"), lambda: calls.append("abort"))  # type: ignore[arg-type]
    assert set(loop.handlers) == {signal.SIGINT, signal.SIGTERM}
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGINT):
        callback, args = loop.handlers[signum]
        callback(*args)
    assert calls == ["graceful", "abort", "abort"]


def test_a_graceful_stop_waits_for_the_next_stop_point(reg):
    """With stop points declared, a stop condition lets the node run on to its next consistent point."""
    graph = Graph().add("t", "Consistent")
    graph.run["max_work"] = 3
    run, result = execute(graph, reg)
    assert result.stop_reason == "max_work" and result.error is None
    assert result.counters["work"] == 5


def test_a_graceful_stop_waits_for_a_node_between_its_stop_points(reg):
    """The stop condition holds and one node reaches its stop point while another is in the middle of an update
    (``leave_stop_point``): the run stops once that update has finished and its node is at its stop point, so it
    ends counted, whatever the thread's timing."""
    graph = Graph().add("t", "Consistent").add("u", "SlowUpdates")
    graph.run["max_work"] = 3
    _, result = execute(graph, reg)
    assert result.stop_reason == "max_work" and result.error is None
    assert result.counters["started"] == result.counters["finished"] == 1
    assert result.counters["work"] < 30  # the fast node waited at its stop point (it works every 5 ms otherwise)


def test_a_node_that_only_holds_a_stop_does_not_end_it_before_the_declared_stop_point(reg):
    """A node that holds a stop for its work without declaring stop points (an evaluation) releases the stop at
    its ``stop_point`` and goes on: the run still ends at the declared node's next stop point, not earlier."""
    graph = Graph().add("t", "Consistent").add("h", "HeldWork")
    graph.run["max_work"] = 3
    _, result = execute(graph, reg)
    assert result.stop_reason == "max_work" and result.error is None
    assert result.counters["work"] == 5
    assert result.counters["held"] > 0


def test_a_stop_waiting_for_a_node_that_ends_instead_completes(reg):
    """The node the stop waited for ends without reaching a stop point: the run stops then, not after the grace."""
    graph = Graph().add("t", "Consistent").add("u", "SlowUpdates", updates=1)
    graph.run["max_work"] = 3
    run = GraphRun(load_graph(graph, registry=reg), reg)
    run.stop_point_grace_s = 10.0
    result = asyncio.run(asyncio.wait_for(run.execute(), 5))
    assert result.stop_reason == "max_work" and result.error is None
    assert result.counters["finished"] == 1


def test_a_stop_point_that_never_comes_is_cut_off_after_the_grace(reg):
    """A node that declared stop points but never reaches one is stopped anyway after stop_point_grace_s."""
    never = Graph().add("t", "NeverConsistent")
    never.run["max_work"] = 3
    graph = GraphRun(load_graph(never, registry=reg), reg)
    graph.stop_point_grace_s = 0.3
    result = asyncio.run(asyncio.wait_for(graph.execute(), 20))
    assert result.stop_reason == "max_work" and result.error is None
    assert result.counters["work"] > 3  # it ran on through the grace
    kinds = [kind for kind, _ in graph.context.shared("events", list)]
    assert kinds == ["setup", "teardown"]
