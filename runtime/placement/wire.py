"""The frame format between processes: length-prefixed frames of a kind, a crossing link and a body.

A frame is ``length (uint32, big endian) | kind (1 byte) | link (uint32) | body``; ``length`` counts what follows
it. The main process routes frames between workers by kind and link alone, without decoding bodies.

Kinds on a crossing link ``k`` (``link`` = k):

* ``M`` message: body = an encoded message, producer side -> consumer side;
* ``E`` end: the producer sends nothing more;
* ``C`` credit: the consumer took messages in (their local puts completed), consumer side -> producer side; body =
  how many, a uint32 (``credit``), empty for one;
* ``R`` release: the consumer side is gone; the producer drops what it sends instead of waiting for credit;
* ``D`` declarations: what the nodes upstream of the producer declared at setup (a dict), producer -> consumer.

``X`` control (``link`` = 0): body = an encoded list ``[op, ...]`` between a worker and the main process (start,
stop, counters, metrics, stop requests, result).

Written for Python 3.8 as well.
"""
from __future__ import annotations

import asyncio
import struct
from typing import Tuple

MESSAGE, END, CREDIT, RELEASE, DECLARE, CONTROL = b"M", b"E", b"C", b"R", b"D", b"X"
TO_CONSUMER = (MESSAGE, END, DECLARE)
TO_PRODUCER = (CREDIT, RELEASE)

_UINT32 = struct.Struct(">I")
"""A frame's length prefix, and a credit frame's count."""
_HEAD = struct.Struct(">IcI")
MAX_FRAME = 1 << 28
"""The largest frame read (256 MiB): tensors ride shared memory, so frames carry control data, small values and the
node states of a checkpoint."""


def frame(kind: bytes, link: int, body: bytes = b"") -> bytes:
    """One frame, length prefix included; ``ValueError`` for a body over ``MAX_FRAME``."""
    if len(body) + 5 >= MAX_FRAME:
        raise ValueError(f"a frame of {len(body) + 5} bytes is over the {MAX_FRAME}-byte limit")
    return _HEAD.pack(5 + len(body), kind, link) + body


def credit(link: int, count: int) -> bytes:
    """A credit frame returning ``count`` credits of ``link`` (an empty body for one, as a single credit always was)."""
    return frame(CREDIT, link, b"" if count == 1 else _UINT32.pack(count))


def credits_in(body: bytes | memoryview) -> int:
    """How many credits a credit frame's body returns; ``ValueError`` for a body that is not a count."""
    if not body:
        return 1
    if len(body) != _UINT32.size:
        raise ValueError(f"a credit frame's body is {len(body)} bytes, not {_UINT32.size}")
    return int(_UINT32.unpack(body)[0])


def parse(data: bytes) -> Tuple[bytes, int, memoryview]:
    """(kind, link, body) of a frame read without its length prefix."""
    kind, link = data[0:1], int.from_bytes(data[1:5], "big")
    return kind, link, memoryview(data)[5:]


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """The next frame without its length prefix; ``asyncio.IncompleteReadError`` at the end of the stream."""
    (length,) = _UINT32.unpack(await reader.readexactly(4))
    if not 5 <= length < MAX_FRAME:
        raise ValueError(f"bad frame length {length}")
    return await reader.readexactly(length)


def prefixed(data: bytes) -> bytes:
    """A frame read by ``read_frame`` with its length prefix again (for forwarding)."""
    return _UINT32.pack(len(data)) + data
