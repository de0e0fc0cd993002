"""Cost of one message hop through the runtime's channels against a bare ``asyncio.Queue``, on asyncio and uvloop.

Run: ``python benchmarks/channel_hop.py`` (about two minutes; ``--messages`` and ``--repeats`` shorten it).

Two topologies, each with ``--messages`` messages (default 200,000) at the runtime's default capacity (2):

* **1 link**: source -> sink (one hop per message);
* **5-node relay**: source -> r1 -> r2 -> r3 -> r4 -> sink, i.e. 4 relays and 5 links, 5 hops per message.

Five ways to move the messages, all in one process and one run:

* ``queue``: the baseline, a bare ``asyncio.Queue(maxsize=capacity)`` per link, ``await put`` / ``await get``;
* ``channel``: ``LocalChannel`` driven the way the runtime drives it (producer ``await channel.put(Message, activity)``,
  consumer ``Inbox.wait`` + ``get_nowait``), no nodes around it;
* ``nodeio``: a ``NodeIO`` per node over those channels (``next_firing()`` / ``emit()``), the node firing path without
  the runner;
* ``graph``: a real graph of tiny toy nodes (a private ``NodeRegistry``), loaded with ``load_graph`` and run with
  ``dnne.runtime.runner.run``: watchdog, activities, stamps and the ``compute`` -> ``emit_all`` path included. It is
  timed inside the nodes (first emit to last receipt), so setup and teardown are not counted. The relays and the
  sink keep ``Node``'s firing loop on one link each, so the runtime fires the chain in the source's task
  (``run.fuse_chains``, on by default: docs/concepts.md, "Chains");
* ``graph, unfused``: the same graph with ``run.fuse_chains: false``, every node firing in its own task.

The time per hop is the CPU time of the (single) thread divided by messages x links: with one thread every hop is
paid for in CPU time (pipelining does not hide it), and CPU time stays honest when other processes share the
machine; on an idle machine wall time is the same within a few percent. The ratio is against ``queue`` on the same loop and
the same topology. Target: ``channel`` and ``graph`` at most 1.5x the bare Queue hop.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Awaitable, Callable

from common import loop_factories, machine, markdown_table, median, run_on

from dnne.runtime.channel import Activity, Inbox, LocalChannel, Message
from dnne.runtime.graph import Graph
from dnne.runtime.types import identity
from dnne.runtime.io import InputSlot, Link, NodeIO
from dnne.runtime.loading import load_graph
from dnne.runtime.node import Node
from dnne.runtime.ports import Input, Output, Param
from dnne.runtime.registry import NodeRegistry
from dnne.runtime.runner import DEFAULT_CAPACITY, run

RELAYS = 4
now = time.thread_time
"""CPU time of this thread: every variant runs in one thread, and CPU time is not inflated when other processes
share the cores (wall time is, by as much as the machine is loaded)."""
TOPOLOGIES = {"1 link": 0, "5-node relay": RELAYS}

# ---------------------------------------------------------------------------------------------------------------
# baseline: asyncio.Queue
# ---------------------------------------------------------------------------------------------------------------
_END = None


async def queue_chain(messages: int, relays: int, capacity: int) -> float:
    """Seconds to push ``messages`` through ``relays`` relays over bare ``asyncio.Queue`` links."""
    queues = [asyncio.Queue(maxsize=capacity) for _ in range(relays + 1)]

    async def source() -> None:
        put = queues[0].put
        for i in range(messages):
            await put(i)
        await put(_END)

    async def relay(inbox: asyncio.Queue, outbox: asyncio.Queue) -> None:
        get, put = inbox.get, outbox.put
        while (item := await get()) is not _END:
            await put(item)
        await put(_END)

    async def sink() -> None:
        get = queues[-1].get
        count = 0
        while await get() is not _END:
            count += 1
        assert count == messages

    started = now()
    async with asyncio.TaskGroup() as group:
        group.create_task(sink())
        for k in range(relays):
            group.create_task(relay(queues[k], queues[k + 1]))
        group.create_task(source())
    return now() - started


# ---------------------------------------------------------------------------------------------------------------
# LocalChannel, driven as the runtime drives it
# ---------------------------------------------------------------------------------------------------------------
async def _receive(channel: LocalChannel, inbox: Inbox) -> Message | None:
    while not len(channel):
        if channel.closed:
            return None
        await inbox.wait((channel,))
    return channel.get_nowait()


async def channel_chain(messages: int, relays: int, capacity: int) -> float:
    """Seconds to push ``messages`` through ``relays`` relays over ``LocalChannel`` links (Inbox + get_nowait)."""
    channels = [LocalChannel(f"link{k}", capacity) for k in range(relays + 1)]
    activities = [Activity(f"node{k}") for k in range(relays + 2)]
    inboxes = [Inbox(activity) for activity in activities]
    for k, channel in enumerate(channels):
        channel.bind(inboxes[k + 1])

    async def source() -> None:
        put, activity = channels[0].put, activities[0]
        for i in range(messages):
            await put(Message(i, i), activity)
        channels[0].close()

    async def relay(k: int) -> None:
        inbox, outbox, activity = channels[k], channels[k + 1], activities[k + 1]
        box = inboxes[k + 1]
        while (message := await _receive(inbox, box)) is not None:
            await outbox.put(message, activity)
        outbox.close()

    async def sink() -> None:
        count = 0
        while await _receive(channels[-1], inboxes[-1]) is not None:
            count += 1
        assert count == messages

    started = now()
    async with asyncio.TaskGroup() as group:
        group.create_task(sink())
        for k in range(relays):
            group.create_task(relay(k))
        group.create_task(source())
    return now() - started


# ---------------------------------------------------------------------------------------------------------------
# NodeIO over LocalChannels: the firing path without the runner
# ---------------------------------------------------------------------------------------------------------------
def _node_io(node_id: str, inbound: LocalChannel | None, outbound: LocalChannel | None) -> NodeIO:
    slots = {}
    if inbound is not None:
        port = Input("Int")
        port.name = "value"
        slots["value"] = InputSlot(port, False, [Link(inbound, identity, "upstream")])
    outputs = {}
    subscribers: dict[str, list[tuple[LocalChannel, str | None]]] = {}
    if outbound is not None:
        out = Output("Int")
        out.name = "value"
        outputs["value"] = out
        subscribers["value"] = [(outbound, None)]
    return NodeIO(node_id, Activity(node_id), slots, outputs, subscribers, merge=False)  # type: ignore[arg-type]


async def nodeio_chain(messages: int, relays: int, capacity: int) -> float:
    """Seconds to push ``messages`` through ``relays`` relays with one ``NodeIO`` per node."""
    channels = [LocalChannel(f"link{k}", capacity) for k in range(relays + 1)]
    ios = [_node_io(f"node{k}", channels[k - 1] if k else None, channels[k] if k <= relays else None)
           for k in range(relays + 2)]

    async def source() -> None:
        emit = ios[0].emit
        for i in range(messages):
            await emit("value", i, i)
        ios[0].close_outputs()

    async def relay(io: NodeIO) -> None:
        while (firing := await io.next_firing()) is not None:
            await io.emit("value", firing.values["value"], firing.stamp)
        io.close_outputs()

    async def sink() -> None:
        io, count = ios[-1], 0
        while await io.next_firing() is not None:
            count += 1
        assert count == messages

    started = now()
    async with asyncio.TaskGroup() as group:
        group.create_task(sink())
        for io in ios[1:-1]:
            group.create_task(relay(io))
        group.create_task(source())
    return now() - started


# ---------------------------------------------------------------------------------------------------------------
# a real graph of toy nodes, run by the runner
# ---------------------------------------------------------------------------------------------------------------
CLOCK: dict[str, float] = {}
"""When the toy source started emitting and the toy sink took its last message (one graph runs at a time)."""


class HopSource(Node):
    """Emits ``count`` integers, stamped with their index, then ends."""

    value = Output("Int", "the integers")
    count = Param(int, 1000, "how many", ge=1, le=1 << 40)

    async def run(self) -> None:
        CLOCK["start"] = now()
        for i in range(self.count):
            await self.emit("value", i, stamp=i)


class HopRelay(Node):
    """Forwards each integer."""

    value = Input("Int", "in")
    out = Output("Int", "out")

    async def compute(self, value: int) -> dict[str, int]:
        return {"out": value}


class HopSink(Node):
    """Takes the integers and notes when the last one arrived."""

    value = Input("Int", "in")
    count = Param(int, 1000, "how many will arrive", ge=1, le=1 << 40)

    async def compute(self, value: int) -> None:
        if self.firings == self.count:  # read the clock once: a CPU clock read costs ~0.6 us here
            CLOCK["end"] = now()
        return None


def toy_registry() -> NodeRegistry:
    """A private registry with only the toy node types (nothing installed is loaded)."""
    registry = NodeRegistry()
    for cls in (HopSource, HopRelay, HopSink):
        registry.add_node(cls)
    return registry


async def graph_chain(messages: int, relays: int, capacity: int, fuse: bool = True) -> float:
    """Seconds from the source's first emit to the sink's last receipt, in a graph run by ``run`` (with
    ``run.fuse_chains`` set to ``fuse``)."""
    registry = toy_registry()
    graph = Graph().add("source", "HopSource", count=messages)
    previous = "source.value"
    for k in range(relays):
        graph.add(f"relay{k}", "HopRelay").link(previous, f"relay{k}.value", capacity=capacity)
        previous = f"relay{k}.out"
    graph.add("sink", "HopSink", count=messages).link(previous, "sink.value", capacity=capacity)
    graph.run.update(seed=1, device="cpu", fuse_chains=fuse)
    graph = load_graph(graph, registry=registry)
    graph_run_result = await run(graph, registry)
    assert graph_run_result.stop_reason == "completed", graph_run_result.summary()
    assert graph_run_result.nodes["sink"]["firings"] == messages, graph_run_result.nodes["sink"]
    return CLOCK["end"] - CLOCK["start"]

VARIANTS: dict[str, Callable[[int, int, int], Awaitable[float]]] = {
    "queue": queue_chain,
    "channel": channel_chain,
    "nodeio": nodeio_chain,
    "graph": graph_chain,
    "graph, unfused": lambda messages, relays, capacity: graph_chain(messages, relays, capacity, fuse=False),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000, help="messages per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per cell (the median is reported)")
    parser.add_argument("--capacity", type=int, default=DEFAULT_CAPACITY, help="capacity of every link")
    args = parser.parse_args()
    loops = loop_factories()
    print(f"machine: {machine()}")
    print(f"{args.messages} messages, capacity {args.capacity}, median of {args.repeats}\n")

    times: dict[tuple[str, str, str], list[float]] = {}
    for _ in range(args.repeats):
        for loop_name, factory in loops.items():
            for topology, relays in TOPOLOGIES.items():
                for variant, chain in VARIANTS.items():
                    gc.collect()
                    seconds = run_on(factory, chain(args.messages, relays, args.capacity))
                    times.setdefault((loop_name, topology, variant), []).append(seconds)

    rows = []
    for loop_name in loops:
        for topology, relays in TOPOLOGIES.items():
            hops = args.messages * (relays + 1)
            base = median(times[(loop_name, topology, "queue")]) / hops
            for variant in VARIANTS:
                per_hop = median(times[(loop_name, topology, variant)]) / hops
                ratio = per_hop / base
                verdict = "" if variant not in ("channel", "graph") else ("ok" if ratio <= 1.5 else "MISSED")
                rows.append((loop_name, topology, variant, f"{per_hop * 1e9:,.0f}", f"{ratio:.2f}", verdict))
    print(markdown_table(("loop", "topology", "variant", "ns / hop", "x bare Queue", "target <= 1.5x"), rows))


if __name__ == "__main__":
    main()
