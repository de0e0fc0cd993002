"""The placement endpoint and its frames: framing and limits, credit flow, end of stream, release, declarations and
errors, between two endpoints joined by an in-memory wire (no processes)."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("msgpack")

from dnne.runtime.placement import wire
from dnne.runtime.placement.codec import Codec, WireError
from dnne.runtime.placement.endpoint import Endpoint


def expected_frame(kind: bytes, link: int, body: bytes) -> bytes:
    """The frame layout written out by hand: length of what follows (4 bytes, big endian), kind, link, body."""
    return (1 + 4 + len(body)).to_bytes(4, "big") + kind + link.to_bytes(4, "big") + body


class Wire:
    """Two endpoints' frames: what each writes is parsed by hand and handed to the other side by kind."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.producer: Endpoint | None = None
        self.consumer: Endpoint | None = None

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def pump(self) -> list[tuple[bytes, int]]:
        """Deliver every frame written so far; returns their (kind, link)."""
        delivered = []
        while self.sent:
            data = self.sent.pop(0)
            length = int.from_bytes(data[:4], "big")
            assert length == len(data) - 4
            kind, link, body = data[4:5], int.from_bytes(data[5:9], "big"), data[9:]
            target = self.consumer if kind in wire.TO_CONSUMER else self.producer
            assert target is not None
            target.on_frame(kind, link, memoryview(body))
            delivered.append((kind, link))
        return delivered


def pair(capacity: int = 2, link: int = 7) -> tuple[Wire, Endpoint, Endpoint]:
    """A producer endpoint sending on ``link`` and a consumer endpoint reading it (call in a running loop)."""
    joined = Wire()
    codec = Codec()
    joined.producer = Endpoint(codec, joined.write, {link: (capacity, lambda value: value)}, {})
    joined.consumer = Endpoint(codec, joined.write, {}, {link: capacity})
    return joined, joined.producer, joined.consumer


class TestFrames:
    @pytest.mark.parametrize(("kind", "link", "body"), [
        (wire.MESSAGE, 0, b""), (wire.CREDIT, 1, b""), (wire.MESSAGE, 2**32 - 1, b"\x00\xff" * 100),
        (wire.CONTROL, 0, bytes(range(256))),
    ])
    def test_layout_and_parse(self, kind: bytes, link: int, body: bytes):
        """A frame is length | kind | link | body, and ``parse`` gives back (kind, link, body)."""
        data = wire.frame(kind, link, body)
        assert data == expected_frame(kind, link, body)
        got_kind, got_link, got_body = wire.parse(data[4:])
        assert (got_kind, got_link, bytes(got_body)) == (kind, link, body)
        assert wire.prefixed(data[4:]) == data

    def test_frame_size_limit(self, monkeypatch):
        """A body whose frame would reach MAX_FRAME is refused when written; one byte less goes."""
        monkeypatch.setattr(wire, "MAX_FRAME", 64)
        assert len(wire.frame(wire.MESSAGE, 1, bytes(58))) == 4 + 63
        with pytest.raises(ValueError, match="limit"):
            wire.frame(wire.MESSAGE, 1, bytes(59))

    def test_read_frames_then_eof(self):
        """``read_frame`` returns frames in order without their prefix; the end of the stream, between or inside
        frames, is an IncompleteReadError."""
        async def read(data: bytes, count: int) -> list[bytes]:
            reader = asyncio.StreamReader()
            reader.feed_data(data)
            reader.feed_eof()
            return [await wire.read_frame(reader) for _ in range(count)]

        first, second = wire.frame(wire.MESSAGE, 3, b"abc"), wire.frame(wire.END, 3)
        assert asyncio.run(read(first + second, 2)) == [first[4:], second[4:]]
        with pytest.raises(asyncio.IncompleteReadError):
            asyncio.run(read(first, 2))
        with pytest.raises(asyncio.IncompleteReadError):
            asyncio.run(read(first[:-1], 1))

    @pytest.mark.parametrize("length", [0, 4, wire.MAX_FRAME, 2**32 - 1])
    def test_bad_lengths_are_refused_before_reading(self, length: int):
        """A length prefix below a frame's head or at the limit is an error, not a huge read."""
        async def read() -> bytes:
            reader = asyncio.StreamReader()
            reader.feed_data(length.to_bytes(4, "big") + b"M" + bytes(8))
            reader.feed_eof()
            return await wire.read_frame(reader)

        with pytest.raises(ValueError, match="bad frame length"):
            asyncio.run(read())


class TestCredit:
    def test_capacity_messages_go_then_the_producer_waits_for_credit(self):
        """With capacity 2, two sends go at once; the third waits until the consumer grants a credit; the
        consumer gets the values, stamps and sources in order."""
        async def scenario() -> None:
            joined, producer, consumer = pair(capacity=2)
            await producer.send(7, {"x": 1}, 0, None)
            await producer.send(7, [1, 2], 1, "g1")
            assert not producer.has_credit(7)
            third = asyncio.ensure_future(producer.send(7, "three", 2, None))
            await asyncio.sleep(0.01)
            assert not third.done()
            assert joined.pump() == [(wire.MESSAGE, 7), (wire.MESSAGE, 7)]
            assert consumer.ready(7)
            assert await consumer.receive(7) == ({"x": 1}, 0, None)
            consumer.grant(7)
            assert joined.pump() == [(wire.CREDIT, 7)]
            await asyncio.wait_for(third, 1)
            joined.pump()
            assert await consumer.receive(7) == ([1, 2], 1, "g1")
            assert await consumer.receive(7) == ("three", 2, None)
            stats = producer.stats()[7]
            assert stats["messages"] == 3 and stats["drops"] == 0 and stats["credit_wait_s"] > 0

        asyncio.run(scenario())

    def test_converter_applies_before_sending(self):
        """The link's converter turns the value into what the consumer's input takes, on the producer's side."""
        async def scenario() -> None:
            joined = Wire()
            joined.producer = Endpoint(Codec(), joined.write, {1: (4, lambda value: value * 10)}, {})
            joined.consumer = Endpoint(Codec(), joined.write, {}, {1: 4})
            await joined.producer.send(1, 4, None, None)
            joined.pump()
            assert await joined.consumer.receive(1) == (40, None, None)

        asyncio.run(scenario())


    def test_credits_come_back_in_batches_of_half_the_capacity(self):
        """On a link of 16 the consumer returns credits 8 at a time, in one frame: the producer, out of credit after
        16 sends, waits through 7 grants and goes on at the 8th with 8 credits; a link of 3 still returns each."""
        async def scenario() -> None:
            joined, producer, consumer = pair(capacity=16)
            for i in range(16):
                await producer.send(7, i, i, None)
            joined.pump()
            blocked = asyncio.ensure_future(producer.send(7, 16, 16, None))
            for i in range(7):
                assert await consumer.receive(7) == (i, i, None)
                consumer.grant(7)
            assert joined.pump() == []
            await asyncio.sleep(0.01)
            assert not blocked.done()
            await consumer.receive(7)
            consumer.grant(7)
            assert joined.pump() == [(wire.CREDIT, 7)]
            await asyncio.wait_for(blocked, 1)
            assert producer.has_credit(7)
            for i in range(17, 24):
                await producer.send(7, i, i, None)
            assert not producer.has_credit(7)  # 8 back, 8 spent

            joined, producer, consumer = pair(capacity=3)
            await producer.send(7, 0, 0, None)
            joined.pump()
            await consumer.receive(7)
            consumer.grant(7)
            assert joined.pump() == [(wire.CREDIT, 7)]

        asyncio.run(scenario())

    @pytest.mark.parametrize("body", [b"\x00\x00\x00\x00", b"\x00\x00\x00\x03", b"\x00\x01", b"\xff" * 4])
    def test_credit_frames_past_what_is_unanswered_are_wire_errors(self, body: bytes):
        """A credit frame from the other process returns at most the messages it has not answered (2 here), and
        its body is a 4-byte count: anything else is a ``WireError``, never credits a slot ring does not have."""
        async def scenario() -> None:
            _, producer, _ = pair(capacity=4)
            await producer.send(7, 0, 0, None)
            await producer.send(7, 1, 1, None)
            with pytest.raises(WireError, match="link 7"):
                producer.on_frame(wire.CREDIT, 7, memoryview(body))
            producer.on_frame(wire.CREDIT, 7, memoryview(wire.credit(7, 2)[9:]))
            assert producer.stats()[7]["messages"] == 2 and producer.has_credit(7)
            with pytest.raises(WireError, match="1 credits returned with 0"):
                producer.on_frame(wire.CREDIT, 7, memoryview(b""))

        asyncio.run(scenario())


class TestEndAndRelease:
    def test_end_comes_after_what_arrived_and_stays(self):
        """An end frame: the messages before it are received first, then ``None``, again and again; a receiver
        already waiting wakes with ``None``."""
        async def scenario() -> None:
            joined, producer, consumer = pair()
            waiting = asyncio.ensure_future(consumer.receive(7))
            await asyncio.sleep(0)
            await producer.send(7, 1, 0, None)
            producer.end(7)
            joined.pump()
            assert await asyncio.wait_for(waiting, 1) == (1, 0, None)
            assert await asyncio.wait_for(consumer.receive(7), 1) is None
            assert await asyncio.wait_for(consumer.receive(7), 1) is None
            assert consumer.ready(7)

        asyncio.run(scenario())

    def test_release_wakes_a_waiting_producer_and_counts_drops(self):
        """A release frame: the producer out of credit stops waiting and drops (counts) what it sends from then."""
        async def scenario() -> None:
            joined, producer, _ = pair(capacity=1)
            await producer.send(7, 1, 0, None)
            blocked = asyncio.ensure_future(producer.send(7, 2, 1, None))
            await asyncio.sleep(0.01)
            assert not blocked.done()
            joined.write(wire.frame(wire.RELEASE, 7))
            assert joined.pump() == [(wire.MESSAGE, 7), (wire.RELEASE, 7)]
            await asyncio.wait_for(blocked, 1)
            await producer.send(7, 3, 2, None)
            assert producer.has_credit(7)
            stats = producer.stats()[7]
            assert (stats["messages"], stats["drops"]) == (1, 2)
            assert joined.sent == []  # nothing went out after the release

        asyncio.run(scenario())

    def test_cut_all_ends_streams_fails_declarations_and_releases(self):
        """The run stops: receivers see the end, a setup waiting for declarations gets the error, producers stop
        waiting."""
        async def scenario() -> None:
            joined = Wire()
            endpoint = Endpoint(Codec(), joined.write, {1: (1, lambda value: value)}, {2: 1})
            await endpoint.send(1, "a", 0, None)
            blocked = asyncio.ensure_future(endpoint.send(1, "b", 1, None))
            declared = asyncio.ensure_future(endpoint.declarations(2))
            await asyncio.sleep(0)
            endpoint.cut_all(RuntimeError("stopped"))
            await asyncio.wait_for(blocked, 1)
            assert await asyncio.wait_for(endpoint.receive(2), 1) is None
            with pytest.raises(RuntimeError, match="stopped"):
                await declared
            assert endpoint.stats()[1]["drops"] == 1

        asyncio.run(scenario())

    def test_cut_without_error_gives_empty_declarations(self):
        """A producer gone before declaring: the consumer's setup gets no declarations rather than waiting."""
        async def scenario() -> None:
            joined, producer, consumer = pair()
            producer.end(7)
            joined.pump()
            assert await consumer.declarations(7) == {}

        asyncio.run(scenario())


class TestDeclarationsAndErrors:
    def test_declarations_cross_and_unencodable_ones_are_named(self):
        """Declarations that encode cross the link; the keys that cannot are returned and left out."""
        async def scenario() -> tuple[list[str], dict[str, Any]]:
            joined, producer, consumer = pair()
            refused = producer.declare(7, {"size": 4, "names": ["a", "b"], "thing": object()})
            joined.pump()
            return refused, await asyncio.wait_for(consumer.declarations(7), 1)

        refused, declared = asyncio.run(scenario())
        assert refused == ["thing"]
        assert declared == {"size": 4, "names": ["a", "b"]}

    def test_unknown_frame_kind_is_a_wire_error(self):
        """A frame of a kind the endpoint does not know is a WireError naming it, not ignored."""
        async def scenario() -> None:
            _, _, consumer = pair()
            with pytest.raises(WireError, match="unexpected frame kind"):
                consumer.on_frame(b"Q", 7, memoryview(b""))

        asyncio.run(scenario())

    def test_undecodable_message_is_a_wire_error_when_received(self):
        """A message body that is not an encoded message fails the receive with a WireError."""
        async def scenario() -> None:
            _, _, consumer = pair()
            consumer.on_frame(wire.MESSAGE, 7, memoryview(b"\xc1"))
            with pytest.raises(WireError):
                await consumer.receive(7)

        asyncio.run(scenario())
