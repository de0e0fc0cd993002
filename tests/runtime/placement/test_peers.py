"""Direct links between workers end without losing a frame, however late the other side reads.

The race this guards against (the direct-link race of issue #9): a producer worker sent its last messages and its
end-of-link frame on the direct socket and closed it; the consumer, busy when they arrived, then wrote a credit
before reading them, the write failed (``EPIPE``), and asyncio dropped the socket with the frames still unread.
"""
from __future__ import annotations

import asyncio
import socket
import threading
import time

from dnne.runtime.placement import wire
from dnne.runtime.placement.peers import PeerLink

FRAMES = 60


def producer(sock: socket.socket, done: threading.Event) -> None:
    """A worker that sends ``FRAMES`` messages and the end of its link, then finishes (its own thread and loop)."""

    async def main() -> None:
        link = PeerLink("consumer", lambda kind, index, body: None, lambda name: None, lambda error: None)
        await link.open(sock)
        for i in range(FRAMES):
            link.write(wire.frame(wire.MESSAGE, 1, i.to_bytes(2, "big") * 50))
        link.write(wire.frame(wire.END, 1))
        await link.finish(10.0)
        done.set()

    asyncio.run(main())


async def late_consumer(sock: socket.socket, other: socket.socket) -> tuple[list[tuple[bytes, bytes]], list[str]]:
    got: list[tuple[bytes, bytes]] = []
    ended: list[str] = []
    link = PeerLink("producer", lambda kind, index, body: got.append((kind, bytes(body))), ended.append,
                    lambda error: None)
    await link.open(sock)
    done = threading.Event()
    thread = threading.Thread(target=producer, args=(other, done))
    thread.start()
    time.sleep(0.5)  # this loop is busy (a node's synchronous work): every frame arrives and waits in the kernel
    link.write(wire.frame(wire.CREDIT, 1))  # a credit for an earlier message goes out before anything is read
    await link.finish(10.0)
    thread.join(timeout=20)
    assert done.is_set(), "the producer never saw the end of the consumer's stream"
    return got, ended


def test_the_last_frames_reach_a_consumer_that_writes_before_reading():
    ours, theirs = socket.socketpair()
    got, ended = asyncio.run(late_consumer(ours, theirs))
    assert [kind for kind, _ in got] == [wire.MESSAGE] * FRAMES + [wire.END]
    assert [int.from_bytes(body[:2], "big") for _, body in got[:-1]] == list(range(FRAMES))
    assert ended == ["producer"]  # the end of the stream came once, after every frame
    assert ours.fileno() == -1 and theirs.fileno() == -1  # both ends closed


def test_a_peer_that_dies_ends_the_stream_after_what_it_sent():
    ours, theirs = socket.socketpair()
    got: list[bytes] = []
    ended: list[str] = []

    async def main() -> None:
        link = PeerLink("dead", lambda kind, index, body: got.append(kind), ended.append, lambda error: None)
        await link.open(ours)
        theirs.sendall(wire.frame(wire.MESSAGE, 3, b"x") + wire.frame(wire.MESSAGE, 3, b"y")[:7])  # cut mid-frame
        theirs.close()
        await link.finish(5.0)

    asyncio.run(main())
    assert got == [wire.MESSAGE] and ended == ["dead"]


def test_a_bad_frame_is_reported_then_the_stream_ends():
    """A frame the receiver refuses (here: a bad frame length) goes to ``on_bad`` with the error, then the stream
    ends once (``on_end``), and nothing after it is applied."""
    ours, theirs = socket.socketpair()
    got: list[bytes] = []
    ended: list[str] = []
    bad: list[ValueError] = []

    async def main() -> None:
        link = PeerLink("liar", lambda kind, index, body: got.append(kind), ended.append, bad.append)
        await link.open(ours)
        theirs.sendall(wire.frame(wire.MESSAGE, 3, b"x") + (2).to_bytes(4, "big") + wire.frame(wire.END, 3))
        await link.finish(5.0)
        theirs.close()

    asyncio.run(main())
    assert got == [wire.MESSAGE] and ended == ["liar"]
    assert len(bad) == 1 and "bad frame length" in str(bad[0])
