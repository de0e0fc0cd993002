"""Toy nodes for the runtime tests, written with the real Node API (no RL, no torch)."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from dnne.runtime.firing_rules import Every, Hold, Window
from dnne.runtime.node import Node
from dnne.runtime.ports import Input, Output, Param
from dnne.runtime.registry import NodeRegistry
from dnne.runtime.types import Token


def events(node: Node) -> list[tuple[str, str]]:
    """The run-wide event log (setup/teardown order) every toy node writes to."""
    return node.ctx.shared("events", list)


class Recorded(Node):
    """Base of the toy nodes: records setup and teardown in the run's event log."""

    async def setup(self) -> None:
        events(self).append(("setup", self.id))

    async def teardown(self) -> None:
        events(self).append(("teardown", self.id))


class Count(Recorded):
    """Emits start..start+n-1, stamped with the index, optionally as a named source and with a delay."""

    out = Output("Int", "the count")
    n = Param(int, 5, "how many values", ge=0, le=1_000_000)
    first = Param(int, 0, "first value", ge=-1_000_000, le=1_000_000)
    stamp_from = Param(int, 0, "stamp of the first value", ge=0, le=1_000_000)
    stamped = Param(bool, True, "stamp the messages")
    group = Param(str, None, "source name carried by every message", nullable=True)
    delay = Param(float, 0.0, "seconds between messages", ge=0.0, le=10.0)

    @classmethod
    def streams(cls, params: dict[str, Any]) -> set[str]:
        return {params["group"]} if params.get("group") else set()

    async def run(self) -> None:
        for i in range(self.n):
            stamp = self.stamp_from + i if self.stamped else None
            await self.emit("out", self.first + i, stamp=stamp, source=self.group)
            if self.delay:
                await asyncio.sleep(self.delay)


class Later(Count):
    """``Count`` starting after ``wait`` seconds."""

    wait = Param(float, 0.0, "seconds before the first message", ge=0.0, le=10.0)

    async def run(self) -> None:
        await asyncio.sleep(self.wait)
        await super().run()


class Double(Recorded):
    """Doubles each value."""

    x = Input("Int", "a value")
    y = Output("Int", "twice the value")

    async def compute(self, x: int) -> Mapping[str, Any]:
        return {"y": 2 * x}


class Add(Recorded):
    """Adds one message of ``a`` to one of ``b`` (and of ``c`` when linked); ``b`` reads stamps one ahead."""

    a = Input("Int", "first term")
    b = Input("Int", "second term, stamped k + 1 for firing k", offset=1)
    c = Input("Int", "optional third term", optional=True)
    total = Output("Int", "a + b (+ c)")

    async def compute(self, a: int, b: int, c: int = 0) -> Mapping[str, Any]:
        return {"total": a + b + c}


class Sink(Recorded):
    """Collects (value, stamp, source) of every message on ``x`` (a fan-in input)."""

    x = Input("Any", "anything", fan_in=True)
    delay = Param(float, 0.0, "seconds spent per message (asyncio.sleep)", ge=0.0, le=10.0)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received: list[tuple[Any, int | None, str | None]] = []

    async def compute(self, x: Any) -> None:
        self.received.append((x, self.stamp, self.source))
        if self.delay:
            await asyncio.sleep(self.delay)


class Pair(Recorded):
    """Joins one ``x`` and one ``y`` of the same source (both fan-in) and records them."""

    x = Input("Int", "left", fan_in=True)
    y = Input("Int", "right", fan_in=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received: list[tuple[int, int, str | None]] = []

    async def compute(self, x: int, y: int) -> None:
        self.received.append((x, y, self.source))


def task_name() -> str:
    """The name of the task running now (a node's id when it fires in its own task)."""
    task = asyncio.current_task()
    return task.get_name() if task is not None else ""


class Merge(Recorded):
    """Forwards whichever input arrives (a merge node, like ORNode); records the task each firing ran in."""

    merge = True
    a = Input("Any", "first", optional=True)
    b = Input("Any", "second", optional=True)
    c = Input("Any", "third", optional=True)
    out = Output("Any", "the message that arrived")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tasks: list[str] = []

    async def compute(self, **inputs: Any) -> Mapping[str, Any]:
        self.tasks.append(task_name())
        (value,) = inputs.values()
        return {"out": value}


class FanMerge(Merge):
    """A merge whose one input is fan-in (several links into ``x``)."""

    x = Input("Any", "any number of links", fan_in=True)


class Server(Recorded):
    """Forwards every value (``copies`` times) from its own ``run`` loop, firing through ``fire_ready`` (all that
    waits, oldest first, as an agent serving several streams does); records the task each firing ran in."""

    x = Input("Any", "in", fan_in=True)
    y = Output("Any", "out")
    copies = Param(int, 1, "messages sent a value", ge=1, le=100)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tasks: list[str] = []

    async def run(self) -> None:
        assert self.io is not None
        while True:
            if await self.fire_ready():
                continue
            if self.io.ended():
                return
            await self.io.wait_idle(self.io.missing())

    async def fire_ready(self) -> bool:
        assert self.io is not None
        firings = self.io.ready()
        for firing in firings:
            self.tasks.append(task_name())
            self.firings += 1
            for _ in range(self.copies):
                await self.emit("y", firing.values["x"], firing.stamp, firing.source)
        return bool(firings)


class Relay(Recorded):
    """Forwards its one input (neither primed nor a merge: a loop of relays cannot start)."""

    x = Input("Any", "in")
    y = Output("Any", "out")

    async def compute(self, x: Any) -> Mapping[str, Any]:
        return {"y": x}


class Weights(Recorded):
    """Sends one config value (a ``Model``) and ends."""

    model = Output("Model", "a config value")
    scale = Param(int, 3, "the value", ge=0, le=100)

    async def run(self) -> None:
        await self.emit("model", {"scale": self.scale})


class Scale(Recorded):
    """Multiplies each ``x`` by the scale of the config input ``model`` (taken once and kept)."""

    x = Input("Int", "a value")
    model = Input("Model", "the scale, config")
    y = Output("Int", "x times the scale")

    async def compute(self, x: int, model: dict[str, int]) -> Mapping[str, Any]:
        return {"y": x * model["scale"]}


class Bias(Recorded):
    """Adds an optional ``bias`` input to ``x`` (0 when the bias is not linked)."""

    x = Input("Int", "a value")
    bias = Input("Int", "optional; when linked, required at every firing", optional=True)
    y = Output("Int", "x + bias")

    async def compute(self, x: int, bias: int = 0) -> Mapping[str, Any]:
        return {"y": x + bias}


class Ticker(Recorded):
    """One tick per trigger (primed once): publishes counters, may stop the run, may sleep per tick."""

    trigger = Input("Trigger", "permission to tick; holds one start token", primed=1)
    tick = Output("Int", "the tick number", offset=1)
    steps_per_tick = Param(int, 0, "added to the 'work' counter per tick", ge=0, le=1_000_000)
    iterations = Param(bool, False, "add one iteration per tick")
    returns = Param(bool, False, "set the 'score' counter to the tick number")
    stop_after = Param(int, 0, "request a stop after this many ticks (0: never)", ge=0, le=1_000_000)
    delay = Param(float, 0.0, "seconds of sleep per tick", ge=0.0, le=10.0)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.triggers: list[tuple[str, int | None]] = []

    async def compute(self, trigger: Token) -> Mapping[str, Any]:
        self.triggers.append((trigger.reason, self.stamp))
        counters = self.ctx.counters
        if self.steps_per_tick:
            counters.add("work", self.steps_per_tick)
        if self.iterations:
            counters.add("iterations")
        if self.returns:
            counters.set("score", float(self.firings))
        if self.stop_after and self.firings >= self.stop_after:
            self.ctx.request_stop()
        if self.delay:
            await asyncio.sleep(self.delay)
        return {"tick": self.firings}


class Echo(Recorded):
    """Answers each tick with a trigger."""

    tick = Input("Int", "a tick")
    done = Output("Trigger", "permission for the next tick")

    async def compute(self, tick: int) -> Mapping[str, Any]:
        return {"done": Token("transition")}


class Slow(Recorded):
    """Spends ``seconds`` in a worker thread per message, then forwards it."""

    x = Input("Any", "in")
    y = Output("Any", "out")
    seconds = Param(float, 0.5, "seconds in the worker thread", ge=0.0, le=60.0)

    async def compute(self, x: Any) -> Mapping[str, Any]:
        await asyncio.to_thread(time.sleep, self.seconds)
        return {"y": x}


class Where(Recorded):
    """Forwards each value; records what it received, the task each firing ran in, and spends ``spin`` seconds
    holding the loop."""

    x = Input("Any", "in")
    y = Output("Any", "out")
    spin = Param(float, 0.0, "seconds of time.sleep per firing (the loop is held, as by compute-bound code)",
                 ge=0.0, le=10.0)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tasks: list[str] = []
        self.received: list[tuple[Any, int | None, str | None]] = []

    async def compute(self, x: Any) -> Mapping[str, Any]:
        self.received.append((x, self.stamp, self.source))
        self.tasks.append(task_name())
        if self.spin:
            time.sleep(self.spin)
        return {"y": x}


class Triple(Recorded):
    """Sends ``10 x``, ``10 x + 1`` and ``10 x + 2`` from inside ``compute`` (``self.emit``), returning nothing."""

    x = Input("Int", "in")
    y = Output("Int", "out")

    async def compute(self, x: int) -> None:
        for copy in range(3):
            await self.emit("y", 10 * x + copy)


class EmitReturn(Recorded):
    """Sends ``x`` twice from inside ``compute`` (``self.emit``), then returns it on the same output: a third message
    a firing. Records the task each firing ran in."""

    x = Input("Any", "in")
    y = Output("Any", "out")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tasks: list[str] = []

    async def compute(self, x: Any) -> Mapping[str, Any]:
        self.tasks.append(task_name())
        await self.emit("y", x)
        await self.emit("y", x)
        return {"y": x}


class Delay(Recorded):
    """A delay line: sends each value two messages later (nothing for the first two, the last two never)."""

    x = Input("Any", "in")
    y = Output("Any", "the value of two messages before")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held: list[Any] = []

    async def compute(self, x: Any) -> Mapping[str, Any] | None:
        self.held.append(x)
        return {"y": self.held.pop(0)} if len(self.held) > 2 else None


class OwnBias(Bias):
    """``Bias`` that overrides ``receive``: it always fires in its own task, never in a producer's."""

    async def receive(self) -> Any:
        return await super().receive()


class Steps(Recorded):
    """Per step, one value on ``x`` then three on ``b``, each its own ``emit``, unstamped."""

    x = Output("Int", "one a step")
    b = Output("Int", "three a step")
    n = Param(int, 3, "steps", ge=0, le=1_000_000)
    wait = Param(float, 0.0, "seconds before the first step", ge=0.0, le=10.0)

    async def run(self) -> None:
        await asyncio.sleep(self.wait)
        for i in range(self.n):
            await self.emit("x", i)
            for _ in range(3):
                await self.emit("b", i)


class Fail(Recorded):
    """Raises on its ``after``-th message (or in setup)."""

    x = Input("Any", "in")
    y = Output("Any", "out")
    after = Param(int, 1, "the firing that raises", ge=1, le=1_000_000)
    in_setup = Param(bool, False, "raise in setup instead")

    async def setup(self) -> None:
        await super().setup()
        if self.in_setup:
            raise RuntimeError("setup broke")

    async def compute(self, x: Any) -> Mapping[str, Any]:
        if self.firings >= self.after:
            raise ValueError(f"boom at {x}")
        return {"y": x}


class Forever(Recorded):
    """A source that emits forever, sleeping between messages."""

    out = Output("Int", "a count")
    delay = Param(float, 0.01, "seconds between messages", ge=0.0, le=10.0)

    async def run(self) -> None:
        i = 0
        while True:
            await self.emit("out", i, stamp=i)
            i += 1
            await asyncio.sleep(self.delay)


class Declarer(Recorded):
    """Declares ``space`` at setup and emits it once."""

    out = Output("Int", "the declared value")
    space = Param(int, 7, "the value declared at setup", ge=0, le=1000)

    async def setup(self) -> None:
        await super().setup()
        self.declare("space", self.space)

    async def run(self) -> None:
        await self.emit("out", self.space, stamp=0)


class Reader(Recorded):
    """Reads ``space`` from upstream of ``x`` at setup; forwards ``x``."""

    x = Input("Int", "in")
    y = Output("Int", "out")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: Any = "not set up"

    async def setup(self) -> None:
        await super().setup()
        self.seen = self.upstream("space", "x")

    async def compute(self, x: int) -> Mapping[str, Any]:
        return {"y": x}


TOY_NODES = (Count, Later, Double, Add, Sink, Pair, Merge, Relay, Weights, Scale, Bias, Ticker, Echo, Slow, Where, Triple,
             EmitReturn, OwnBias, Steps, Fail, Forever, Declarer, Reader, Server, Delay, FanMerge)


def toy_registry(builtins: bool = False) -> NodeRegistry:
    """A registry holding the toy nodes (and the installed node packages when ``builtins``)."""
    registry = NodeRegistry()
    if builtins:
        registry.load_entry_points()
    for cls in TOY_NODES:
        registry.add_node(cls)
    register_toy_vocabulary(registry)
    return registry


def register_toy_vocabulary(registry: NodeRegistry) -> None:
    """What a node package registers for its counters, on the toy counters: a stop shorthand, a goal
    shorthand, summary fields, the metrics' step counter and a progress column."""
    from dnne.runtime.vocabulary import integer_at_least

    registry.add_stop_shorthand("max_work", "work", "int: stop when the work counter reaches it",
                                check=integer_at_least(1))
    registry.add_stop_shorthand("target_score", "score", "float: stop, solved, when the score reaches it",
                                solved=True)
    registry.add_summary_field("work", "work", integer=True)
    registry.add_summary_field("score", "score")
    registry.set_step_counter("work", total_key="max_work")
    registry.add_progress_column("score")


class Needs(Recorded):
    """A node with a param the graph must set."""

    out = Output("Int", "the value")
    value = Param(int, doc="must be set", ge=0, le=100)

    async def run(self) -> None:
        await self.emit("out", self.value)


class Sample(Recorded):
    """Every k-th ``x`` (firing rule ``Every``), joined with the window of the ``w`` before it (``Window``, offset 1:
    ``w`` stamped k + 1 belongs to step k); records (x, window, stamp) and sends x plus the window's sum."""

    x = Input("Int", "a value; firing s takes the one stamped s * k", rule=Every("k"))
    w = Input("Int", "values stamped k + 1 for step k; firing s takes steps (s-1)k .. sk-1", offset=1,
              rule=Window("k"))
    total = Output("Int", "x plus the sum of the window")
    k = Param(int, 3, "the rule size", ge=1, le=1000)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received: list[tuple[int, tuple[int, ...], int | None]] = []

    async def compute(self, x: int, w: tuple[int, ...]) -> Mapping[str, Any]:
        self.received.append((x, w, self.stamp))
        return {"total": x + sum(w)}


class Twin(Recorded):
    """One producer of two streams: ``x`` stamped i, then ``w`` stamped i + 1 (a step's outputs after step i)."""

    x = Output("Int", "i, stamped i")
    w = Output("Int", "i, stamped i + 1")
    n = Param(int, 5, "how many of each", ge=0, le=1_000_000)

    async def run(self) -> None:
        for i in range(self.n):
            await self.emit("x", i, stamp=i)
            await self.emit("w", i, stamp=i + 1)


class Thin(Recorded):
    """Every k-th ``x`` only (firing rule ``Every`` on its one input)."""

    x = Input("Int", "a value", rule=Every("k"))
    y = Output("Int", "the value")
    k = Param(int, 3, "the rule size", ge=1, le=1000)

    async def compute(self, x: int) -> Mapping[str, Any]:
        return {"y": x}


class ThinLater(Recorded):
    """Every k-th ``x``, with k an attribute set in ``start()`` (left unset when the param ``k`` is null)."""

    x = Input("Int", "a value", rule=Every("period"))
    y = Output("Int", "the value")
    k = Param(int, None, "the rule size", ge=1, le=1000, nullable=True)

    async def start(self) -> None:
        if self.k is not None:
            self.period = self.k

    async def compute(self, x: int) -> Mapping[str, Any]:
        return {"y": x}


class Keep(Recorded):
    """Joins each ``fast`` message with the ``slow`` one held for k firings (firing rule ``Hold``); records them."""

    fast = Input("Int", "one message per firing")
    slow = Input("Int", "message j serves firings jk .. jk + k - 1", rule=Hold("k"))
    k = Param(int, 3, "the rule size", ge=1, le=1000)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received: list[tuple[int, int, int | None]] = []

    async def compute(self, fast: int, slow: int) -> None:
        self.received.append((fast, slow, self.stamp))


TOY_NODES = (*TOY_NODES, Needs, Twin, Sample, Thin, ThinLater, Keep)
