"""``PeerLink``: one worker's end of the socket it shares with another worker (a direct link between two parts).

Frames are read as they come and handed to ``on_frame``; ``write`` never blocks. The end of the conversation is a
handshake, because a socket closed by one side loses data on the other: once a worker has closed its end, the
peer's next write fails (``EPIPE``), and asyncio then drops the socket, including the frames still unread in the
kernel -- the producer's last messages and its end-of-link frame. So neither side closes while the other may still
write: ``finish`` only shuts down its writing half (the peer reads an end of stream after every frame this side
sent) and keeps reading until the peer shuts down its own half, which it does as soon as it has read that end of
stream (``on_end``). A peer that dies reads as an end of stream too.
"""
from __future__ import annotations

import asyncio
import socket
from typing import Callable

from . import wire

Frame = Callable[[bytes, int, memoryview], None]


class PeerLink:
    """A direct socket to worker ``name``.

    Args:
        name: the peer worker's name.
        on_frame: called with (kind, link, body) for each frame the peer sends.
        on_end: called once when the peer's stream ends (it finished, or died), after every frame it sent.
        on_bad: called with the error when a frame does not parse or ``on_frame`` refuses it (before ``on_end``);
            the peer is not trusted, so its links end there.
    """

    def __init__(self, name: str, on_frame: Frame, on_end: Callable[[str], None],
                 on_bad: Callable[[ValueError], None]) -> None:
        self.name = name
        self.on_frame = on_frame
        self.on_end = on_end
        self.on_bad = on_bad
        self.ended = False
        self._transport: asyncio.WriteTransport | None = None
        self._reader_task: asyncio.Task[None] | None = None

    async def open(self, sock: socket.socket) -> None:
        """Take over the connected socket ``sock`` and start reading it."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2**20)
        transport, _ = await loop.create_connection(lambda: asyncio.StreamReaderProtocol(reader), sock=sock)
        self._transport = transport
        self._reader_task = asyncio.ensure_future(self._read(reader))

    def write(self, data: bytes) -> None:
        """Send one frame (length prefix included)."""
        assert self._transport is not None
        self._transport.write(data)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                kind, link, body = wire.parse(await wire.read_frame(reader))
                self.on_frame(kind, link, body)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except ValueError as error:  # a frame that does not parse (WireError included): the peer is not trusted
            self.on_bad(error)
        finally:
            self.ended = True
            self.on_end(self.name)
            self._close()

    def _close(self) -> None:
        """Close the socket: what was written still goes out first, and the peer, having sent its end of stream,
        writes nothing more that could be lost."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    async def finish(self, timeout_s: float) -> None:
        """This side sends nothing more: shut down the writing half (after what is buffered), then read on until
        the peer's end of stream, or ``timeout_s`` (a peer that never answers is closed on)."""
        assert self._transport is not None and self._reader_task is not None
        if not self._transport.is_closing():
            self._transport.write_eof()
        try:
            await asyncio.wait_for(asyncio.shield(self._reader_task), timeout_s)
        except asyncio.TimeoutError:
            self._reader_task.cancel()
            self._close()
        # the transport hands the socket back to the kernel one turn after close
        await asyncio.sleep(0)
