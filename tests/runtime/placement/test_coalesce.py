"""The frames of one event-loop turn leave in one write, in order; ending a stream flushes first."""
from __future__ import annotations

import asyncio

from dnne.runtime.placement import wire
from dnne.runtime.placement.coalesce import Coalescer
from dnne.runtime.placement.hub import Worker


def test_one_turn_is_one_write_in_order() -> None:
    writes: list[bytes] = []

    async def main() -> None:
        out = Coalescer(writes.append)
        out(b"a")
        out(b"b")
        out(b"c")
        assert writes == []  # nothing leaves during the turn
        await asyncio.sleep(0)
        assert writes == [b"abc"]
        out(b"d")
        await asyncio.sleep(0)
        out(b"e")
        await asyncio.sleep(0)

    asyncio.run(main())
    assert writes == [b"abc", b"d", b"e"]


def test_flush_writes_what_is_buffered_at_once() -> None:
    writes: list[bytes] = []

    async def main() -> None:
        out = Coalescer(writes.append)
        out(b"a")
        out(b"b")
        out.flush()
        assert writes == [b"ab"]
        await asyncio.sleep(0)  # the turn's scheduled flush finds nothing left

    asyncio.run(main())
    assert writes == [b"ab"]


def test_without_an_event_loop_a_frame_leaves_at_once() -> None:
    writes: list[bytes] = []
    out = Coalescer(writes.append)
    out(b"a")
    out(b"b")
    assert writes == [b"a", b"b"]


class FakeWriter:
    """A transport that records what happens to it."""

    def __init__(self) -> None:
        self.events: list[object] = []

    def write(self, data: bytes) -> None:
        self.events.append(data)

    def is_closing(self) -> bool:
        return "eof" in self.events

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.events.append("eof")


def test_a_worker_closed_in_the_turn_it_was_sent_to_gets_the_frames_before_the_end() -> None:
    writer = FakeWriter()
    first, stop = wire.frame(wire.MESSAGE, 1, b"x"), wire.frame(wire.CONTROL, 0, b"stop")

    async def main() -> None:
        worker = Worker("w", "python", ["n"], writer=writer)
        worker.send(first)
        worker.send(stop)
        worker.close()
        worker.send(first)  # after the end: dropped
        await asyncio.sleep(0)

    asyncio.run(main())
    assert writer.events == [first + stop, "eof"]
