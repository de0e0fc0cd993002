"""One process's side of the crossing links: credit-based sending, receiving, declarations.

Flow control is by credit, so a crossing link blocks like an in-process channel: the producer side starts with
``capacity`` credits and spends one per message; the consumer side earns one back when its local put into the
consumer's channel has completed, and returns them (``C``) in batches of ``credit_batch(capacity)``: half the
capacity, so a link of 16 sends one credit frame per 8 messages instead of 8 (each frame is a write and a wake-up of
the other process), and a link of 2 or 3 still one per message. Out of credit, the producer waits (timed as producer
wait). Past the producer's own channel (into ``RemoteSend``, ``capacity`` as in one process), the consumer's channel
holds at most ``capacity`` messages and at most ``capacity`` more are on their way or taken in with their credits
not yet returned. No batching deadlock: a producer out of credit has ``capacity`` messages unanswered, of which
fewer than a batch are taken in, so at least ``capacity - batch + 1`` (at least one) are still to be put into the
consumer's channel; either that channel is full (the producer of the same link in one process would block too) or
those puts earn the rest of the batch and return it.

Tensors of a message ride the link's shared-memory slots (``slots``) when the run has a slot directory; the credit
that comes back for a message also frees its slot.

Written for Python 3.8 as well (no imports from the runtime).
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Callable, Deque, Dict, Optional, Tuple

from . import wire
from .codec import Codec, WireError
from .slots import SlotReader, SlotWriter

Received = Tuple[Any, Optional[int], Optional[str]]
_END = object()


@dataclass
class SendStats:
    """Producer-side counts of one crossing link: messages sent, drops after a release, time out of credit."""

    messages: int = 0
    drops: int = 0
    credit_wait_s: float = 0.0

    def as_dict(self) -> Dict[str, float]:
        """The stats as a plain dict."""
        return asdict(self)


class _Outbound:
    __slots__ = ("capacity", "credits", "released", "waiter", "stats", "convert", "slots")

    def __init__(self, capacity: int, convert: Callable[[Any], Any], slots: Optional[SlotWriter]) -> None:
        self.capacity = capacity
        self.credits = capacity
        self.released = False
        self.waiter: Optional[asyncio.Future] = None
        self.stats = SendStats()
        self.convert = convert
        self.slots = slots


class _Inbound:
    __slots__ = ("queue", "waiter", "declarations", "slots", "batch", "earned")

    def __init__(self, loop: asyncio.AbstractEventLoop, capacity: int, slots: Optional[SlotReader]) -> None:
        self.queue: Deque[Any] = deque()
        self.waiter: Optional[asyncio.Future] = None
        self.declarations: asyncio.Future = loop.create_future()
        self.slots = slots
        self.batch = credit_batch(capacity)
        self.earned = 0


def credit_batch(capacity: int) -> int:
    """How many credits a consumer returns in one frame on a link of ``capacity``: half of it, at least one."""
    return max(1, capacity // 2)


class Endpoint:
    """The crossing links of one process, on both sides.

    Args:
        codec: encodes and decodes message bodies.
        write: sends one frame (length prefix included) towards the other processes; never blocks.
        outbound: for each link this process produces on: (capacity, converter applied before sending).
        inbound: for each link this process consumes from: its capacity.
        slot_dir: the run's shared-memory slot directory (``slots``); ``None``: tensors travel inside frames.
    """

    def __init__(self, codec: Codec, write: Callable[[bytes], None],
                 outbound: Dict[int, Tuple[int, Callable[[Any], Any]]], inbound: Dict[int, int],
                 slot_dir: Optional[str] = None) -> None:
        loop = asyncio.get_running_loop()
        self.codec = codec
        self.write = write
        self._out = {k: _Outbound(capacity, convert, SlotWriter(slot_dir, k, capacity) if slot_dir else None)
                     for k, (capacity, convert) in outbound.items()}
        self._in = {k: _Inbound(loop, capacity, SlotReader(slot_dir, k, capacity) if slot_dir else None)
                    for k, capacity in inbound.items()}

    # ---- producer side ---------------------------------------------------------------------------------------
    async def send(self, link: int, value: Any, stamp: Optional[int], source: Optional[str]) -> None:
        """Send one message on ``link``, waiting while out of credit; dropped (counted) once released."""
        out = self._out[link]
        if out.credits <= 0 and not out.released:
            started = time.perf_counter()
            try:
                while out.credits <= 0 and not out.released:
                    out.waiter = asyncio.get_running_loop().create_future()
                    await out.waiter
            finally:
                out.waiter = None
                out.stats.credit_wait_s += time.perf_counter() - started
        if out.released:
            out.stats.drops += 1
            return
        body = self.codec.encode_message(out.convert(value), stamp, source, out.slots)
        out.credits -= 1
        out.stats.messages += 1
        self.write(wire.frame(wire.MESSAGE, link, body))

    def has_credit(self, link: int) -> bool:
        """Whether ``send`` on ``link`` would go out without waiting."""
        out = self._out[link]
        return out.credits > 0 or out.released

    def end(self, link: int) -> None:
        """The producer of ``link`` sends nothing more."""
        self.write(wire.frame(wire.END, link))

    def declare(self, link: int, declarations: Dict[str, Any]) -> list:
        """Send what is declared upstream of ``link``'s producer; returns the keys that could not be encoded."""
        encodable, refused = {}, []
        for key, value in declarations.items():
            try:
                self.codec.encode(value)
            except WireError:
                refused.append(key)
                continue
            encodable[key] = value
        self.write(wire.frame(wire.DECLARE, link, self.codec.encode(encodable)))
        return refused

    def stats(self) -> Dict[int, Dict[str, float]]:
        """Producer-side stats per outbound link."""
        return {link: out.stats.as_dict() for link, out in self._out.items()}

    # ---- consumer side ---------------------------------------------------------------------------------------
    async def receive(self, link: int) -> Optional[Received]:
        """The next (value, stamp, source) on ``link``; ``None`` once the producer has ended."""
        inbound = self._in[link]
        while not inbound.queue:
            inbound.waiter = asyncio.get_running_loop().create_future()
            try:
                await inbound.waiter
            finally:
                inbound.waiter = None
        item = inbound.queue.popleft()
        if item is _END:
            inbound.queue.appendleft(_END)
            return None
        return self.codec.decode_message(item, inbound.slots)

    def ready(self, link: int) -> bool:
        """Whether ``receive`` on ``link`` would return without waiting."""
        return bool(self._in[link].queue)

    def grant(self, link: int) -> None:
        """Earn one credit of ``link``'s producer back (the message was put into the consumer's channel); return
        the earned credits once they make a batch."""
        inbound = self._in[link]
        inbound.earned += 1
        if inbound.earned >= inbound.batch:
            self.write(wire.credit(link, inbound.earned))
            inbound.earned = 0

    async def declarations(self, link: int) -> Dict[str, Any]:
        """What the producer side of ``link`` declared at setup (waits for it)."""
        return await self._in[link].declarations

    # ---- incoming frames -------------------------------------------------------------------------------------
    def on_frame(self, kind: bytes, link: int, body: Any) -> None:
        """Apply one frame addressed to this process; ``WireError`` for one this process cannot take (a link it
        does not have on that side, a malformed or excess credit, an unknown kind)."""
        if kind == wire.CREDIT:
            out = self._out.get(link)
            if out is None:
                raise WireError(f"a credit on link {link}, which this process does not send on")
            try:
                count = wire.credits_in(body)
            except ValueError as error:
                raise WireError(f"link {link}: {error}") from None
            unanswered = out.capacity - out.credits
            if not 0 < count <= unanswered:
                raise WireError(f"link {link}: {count} credits returned with {unanswered} messages unanswered")
            out.credits += count
            _wake(out.waiter)
        elif kind == wire.RELEASE:
            self.release(link)
        elif kind == wire.MESSAGE:
            inbound = self._inbound(link)
            inbound.queue.append(bytes(body))  # decoded by the receiver, when it takes it
            _wake(inbound.waiter)
        elif kind == wire.END:
            self.cut(link)
        elif kind == wire.DECLARE:
            future = self._inbound(link).declarations
            if not future.done():
                future.set_result(self.codec.decode(body))
        else:
            raise WireError(f"unexpected frame kind {kind!r} on link {link}")

    def _inbound(self, link: int) -> _Inbound:
        inbound = self._in.get(link)
        if inbound is None:
            raise WireError(f"a frame for link {link}, which this process does not receive on")
        return inbound

    def release(self, link: int) -> None:
        """Nobody reads ``link`` any more: its producer stops waiting for credit and drops what it sends."""
        out = self._out.get(link)
        if out is not None:
            out.released = True
            _wake(out.waiter)

    def cut(self, link: int, error: Optional[BaseException] = None) -> None:
        """``link``'s producer is gone: the consumer sees the end of the stream after what arrived; a setup
        still waiting for its declarations gets ``error`` (or none)."""
        inbound = self._in.get(link)
        if inbound is None:
            return
        if not inbound.queue or inbound.queue[-1] is not _END:
            inbound.queue.append(_END)
        _wake(inbound.waiter)
        if not inbound.declarations.done():
            if error is not None:
                inbound.declarations.set_exception(error)
            else:
                inbound.declarations.set_result({})

    def cut_all(self, error: BaseException) -> None:
        """Every link ends here (the run stops): waits for declarations fail with ``error``, producers are released."""
        for link in self._in:
            self.cut(link, error)
        for link in self._out:
            self.release(link)


def _wake(waiter: Optional[asyncio.Future]) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
