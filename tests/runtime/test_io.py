"""Unit tests of a node's inputs (NodeIO) without a run: joins pair messages by stamp (with offsets), fan-in
inputs keep one queue per stream, mismatched stamps are an AlignmentError, routes filter what is emitted."""
from __future__ import annotations

import asyncio
import random

import pytest
from toy_nodes import Add, Double, Pair, Sink

from dnne.runtime.channel import Activity, LocalChannel, Message
from dnne.runtime.io import AlignmentError, InputSlot, Link, NodeIO
from dnne.runtime.types import identity


def node_io(cls, feeds: dict[str, list[tuple[str, LocalChannel]]], subscribers=None) -> NodeIO:
    slots = {name: InputSlot(port, False) for name, port in cls.input_ports.items()}
    for name, links in feeds.items():
        slots[name].links = [Link(channel, identity, upstream) for upstream, channel in links]
    return NodeIO("n", Activity("n"), slots, cls.output_ports, subscribers or {p: [] for p in cls.output_ports},
                  cls.merge)


def firings(io: NodeIO) -> list[tuple[dict, int | None, str | None]]:
    async def drain():
        found = []
        while (firing := await io.next_firing()) is not None:
            found.append((firing.values, firing.stamp, firing.source))
        return found

    return asyncio.run(drain())


def feed(channel: LocalChannel, *messages: Message) -> LocalChannel:
    for message in messages:
        assert channel.offer(message)
    channel.close()
    return channel


def test_join_pairs_by_stamp_with_the_offset():
    """Add's b reads stamps one ahead (offset 1): a@k joins b@k+1, and the firing's stamp is k."""
    a = feed(LocalChannel("a", 4), Message(1, 0, None), Message(2, 1, None))
    b = feed(LocalChannel("b", 4), Message(10, 1, None), Message(20, 2, None))
    got = firings(node_io(Add, {"a": [("u", a)], "b": [("v", b)]}))
    assert got == [({"a": 1, "b": 10}, 0, None), ({"a": 2, "b": 20}, 1, None)]


def test_mismatched_stamps_are_an_alignment_error():
    """a@0 with b@5 (expected b@1) cannot be one firing: AlignmentError naming both inputs and stamps."""
    a = feed(LocalChannel("a", 4), Message(1, 0, None))
    b = feed(LocalChannel("b", 4), Message(10, 5, None))
    with pytest.raises(AlignmentError, match="input 'a' holds step 0 but input 'b' holds step 4"):
        firings(node_io(Add, {"a": [("u", a)], "b": [("v", b)]}))


def test_fan_in_names_unsourced_messages_by_their_link():
    """Unsourced messages on a fan-in input take the name of the link they came through (the stream)."""
    one = feed(LocalChannel("1", 4), Message("x", None, None))
    two = feed(LocalChannel("2", 4), Message("y", None, None), Message("z", None, "own"))
    got = firings(node_io(Sink, {"x": [("left", one), ("right", two)]}))
    assert sorted((values["x"], source) for values, _, source in got) == [("x", "left"), ("y", "right"),
                                                                          ("z", "own")]


def test_fan_in_join_pairs_within_a_stream():
    """Pair joins x and y of the same stream only, whichever order the streams come in."""
    x1, x2 = feed(LocalChannel("x1", 4), Message(1, 0, None)), feed(LocalChannel("x2", 4), Message(2, 0, None))
    y2, y1 = feed(LocalChannel("y2", 4), Message(20, 0, None)), feed(LocalChannel("y1", 4), Message(10, 0, None))
    got = firings(node_io(Pair, {"x": [("s1", x1), ("s2", x2)], "y": [("s2", y2), ("s1", y1)]}))
    assert sorted((values["x"], values["y"], source) for values, _, source in got) == [(1, 10, "s1"), (2, 20, "s2")]


def test_emit_follows_routes():
    """A subscriber whose link routes one stream receives only that stream's messages; others receive all."""
    everything, only_b = LocalChannel("all", 4), LocalChannel("b", 4)
    io = node_io(Add, {}, {"total": [(everything, None), (only_b, "b")]})

    async def send():
        for source in ("a", "b", None):
            await io.emit("total", source, 0, source)

    asyncio.run(send())
    assert [m.value for m in everything.snapshot()] == ["a", "b", None]
    assert [m.value for m in only_b.snapshot()] == ["b"]


def test_a_link_of_several_sources_does_not_hold_back_the_one_a_join_can_fire():
    """x's one link (capacity 2) carries three streams; y has only s3's message. s1's and s2's messages fill the
    link's share of pending, yet s3's, behind them, is still taken and fires (before: the join waited forever)."""
    x, y = LocalChannel("x", 2), feed(LocalChannel("y", 4), Message(30, 0, "s3"))
    io = node_io(Pair, {"x": [("agent", x)], "y": [("s3", y)]})

    async def run() -> list[tuple[dict, str | None]]:
        async def produce() -> None:
            for value, source in ((1, "s1"), (2, "s2"), (3, "s3")):
                await x.put(Message(value, 0, source))
            x.close()

        producer = asyncio.ensure_future(produce())
        found = []
        while (firing := await asyncio.wait_for(io.next_firing(), 5)) is not None:
            found.append((firing.values, firing.source))
        await producer
        return found

    assert asyncio.run(run()) == [({"x": 3, "y": 30}, "s3")]


def test_a_lockstep_join_fires_what_the_general_join_fires():
    """One message an input, one already pulled and one still in its channel, sourced or not: the firing (values,
    stamp, source), what stays queued and the stamp check equal those of the general join, taken message by
    message (``_join_firing`` after ``pull``)."""
    def joined(general: bool, b_stamp: int, source: str | None) -> tuple:
        a, b = LocalChannel("a", 2), LocalChannel("b", 2)
        io = node_io(Add, {"a": [("u", a)], "b": [("v", b)]})
        assert a.offer(Message(1, 3, None))
        assert io.poll() is None  # b holds nothing: a's message is pulled and waits
        assert b.offer(Message(10, b_stamp, source))
        if general:
            io._lockstep = None
        try:
            firing = io.poll()
        except AlignmentError as error:
            return ("error", str(error))
        return firing.values, firing.stamp, firing.source, io.slots["a"].pulled, io.slots["b"].pulled, len(a), len(b)

    for b_stamp, source in ((4, None), (4, "g1"), (6, None)):
        assert joined(False, b_stamp, source) == joined(True, b_stamp, source)
    assert joined(False, 4, "g1") == ({"a": 1, "b": 10}, 3, "g1", 0, 0, 0, 0)
    assert joined(False, 6, None)[0] == "error"


@pytest.mark.parametrize("cls", [Add, Pair])
def test_the_lockstep_join_fires_what_the_general_join_fires_on_deep_channels(cls):
    """Random contents (up to five messages an input over capacities of 1-4, some pulled before the rest arrive,
    unsourced or of two sources, fan-in or not, stamped in step, out of step or not at all, one link converting):
    the lockstep join, which fires on the oldest messages, makes the general join's firings in the same order, raises
    the same alignment errors, and after each leaves the same messages pending (by source) and in the channels."""
    rng = random.Random(7)
    names = list(cls.input_ports)[:3 if cls is Add else 2]
    upstreams = ("u", "v", "w") if cls is Add else ("g", "g")

    def run(contents: tuple, capacity: int, general: bool) -> list:
        channels = {name: LocalChannel(name, capacity) for name in names}
        io = node_io(cls, {name: [(upstream, channels[name])] for name, upstream in zip(names, upstreams)})
        io.slots[names[0]].links[0].convert = lambda value: value + 0.5
        if general:
            io._lockstep = None

        def held() -> list:
            return [({source: [m.value for m in queue] for source, queue in io.slots[name].pending.items() if queue},
                     [m.value for m in channels[name].snapshot()]) for name in names]

        seen = []
        for batch in contents:
            for name, messages in zip(names, batch):
                for message in messages:
                    channels[name].offer(message)
            try:
                while (firing := io.poll()) is not None:
                    seen.append(((firing.values, firing.stamp, firing.source), held()))
            except AlignmentError as error:
                return [*seen, (str(error), held())]
            seen.append(held())
        return seen

    fired = 0
    for _ in range(600):
        value = iter(range(1000))
        stamped, step = rng.random() < 0.7, {name: 0 for name in names}

        def messages(name: str, count: int) -> list[Message]:
            found = []
            for _ in range(count):
                stamp = None
                if stamped:
                    stamp = step[name] + cls.input_ports[name].offset + (rng.random() < 0.05)
                    step[name] += 1
                found.append(Message(next(value), stamp, rng.choice((None, None, "s1", "s2"))))
            return found

        contents = ([messages(names[0], rng.randint(0, 2))] + [[] for _ in names[1:]],
                    [messages(name, rng.randint(0, 3)) for name in names])
        capacity = rng.randint(1, 4)
        lockstep = run(contents, capacity, False)
        assert lockstep == run(contents, capacity, True), contents
        fired += sum(1 for f in lockstep if isinstance(f, tuple) and not isinstance(f[0], str))
    assert fired > 100


@pytest.mark.parametrize("cls", [Double, Sink])
def test_a_single_input_fires_what_its_general_join_fires(cls):
    """Random arrivals on one link (unsourced or of two sources, fan-in or not), polled between them: the fast path
    that takes a lone message straight from the channel makes the general join's firings, in the same order, and
    leaves the same messages held and the same queues (in the same order) behind."""
    rng = random.Random(11)
    name = next(iter(cls.input_ports))

    def run(arrivals: list, general: bool) -> list:
        channel = LocalChannel(name, 3)
        io = node_io(cls, {name: [("up", channel)]})
        if general:
            io.single = None
        slot, seen = io.slots[name], []
        for batch in arrivals:
            for message in batch:
                channel.offer(message)
            while (firing := io.poll()) is not None:
                seen.append((firing.values, firing.stamp, firing.source))
            seen.append((slot.pulled + len(channel), list(slot.pending)))
        return seen

    for _ in range(300):
        values = iter(range(1000))
        arrivals = [[Message(next(values), rng.choice((None, 4)), rng.choice((None, "s1", "s2")))
                     for _ in range(rng.randint(0, 2))] for _ in range(4)]
        assert run(arrivals, False) == run(arrivals, True), arrivals
