"""Bounded channels between nodes: one per subscriber, blocking by default, with stats."""
from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Literal, NamedTuple

Policy = Literal["block", "latest"]
POLICIES: tuple[str, ...] = ("block", "latest")


class Message(NamedTuple):
    """One value on a channel.

    Args:
        value: the payload.
        stamp: index of the source firing the value derives from, ``None`` when unstamped.
        source: the name of the stream the value belongs to when a node serves several (env groups).
    """

    value: Any
    stamp: int | None = None
    source: str | None = None


class Activity:
    """What a node is doing, as the deadlock watchdog sees it: running, or blocked on channels.

    Also accumulates the time the node spent blocked: from the start of a wait until its task runs again. A node
    woken while another task holds the loop is runnable at once (to the watchdog) and blocked until its turn comes,
    so its busy time is the time it runs.
    """

    __slots__ = ("node_id", "blocked_on", "blocked_s", "lent_s", "waiting", "fused_since", "_since", "_watch")

    def __init__(self, node_id: str, watch: Any = None) -> None:
        self.node_id = node_id
        self.blocked_on: tuple[Channel, ...] = ()
        self.blocked_s = 0.0
        self.lent_s = 0.0
        """Seconds its task spent firing other nodes (``firing.fire_fused``): their busy time, not this node's."""
        self.waiting = False
        """A wait is open: ``block`` was called and the node's task has not resumed (``resume``) yet."""
        self.fused_since: float | None = None
        """When the firing that a producer runs for it in the producer's task began (``firing.fire_fused``)."""
        self._since = 0.0
        self._watch = watch

    def block(self, channels: tuple[Channel, ...]) -> None:
        """Mark the node blocked on ``channels``; its wait opens."""
        self.blocked_on = channels
        self._since = time.perf_counter()
        self.waiting = True
        if self._watch is not None:
            self._watch.blocked(self)

    def wake(self) -> None:
        """Mark the node runnable (called synchronously by whoever unblocks it); its wait lasts until its task
        resumes (``resume``)."""
        if not self.blocked_on:
            return
        self.blocked_on = ()
        if self._watch is not None:
            self._watch.unblocked(self)

    def resume(self) -> float:
        """The node's task runs again after a wait: count the wait as blocked time and return its seconds (0 when
        no wait was open). A wait that a producer's firing of the node interrupts ends where that firing began."""
        self.wake()
        if not self.waiting:
            return 0.0
        self.waiting = False
        fused = self.fused_since
        # a wait opened inside that firing (its output full) is not interrupted by it: it runs to now
        end = fused if fused is not None and fused >= self._since else time.perf_counter()
        waited = end - self._since
        self.blocked_s += waited
        return waited

    def shift(self, seconds: float) -> None:
        """Count ``seconds`` of the open wait as busy: the node fired meanwhile in another task
        (``firing.fire_fused``)."""
        self._since += seconds

    def waiting_on(self) -> str:
        """The names of the channels the node is blocked on."""
        return ", ".join(channel.name for channel in self.blocked_on)


class Inbox:
    """The single long-lived waiter of a consumer node: every input channel wakes it, no per-message tasks."""

    __slots__ = ("activity", "_waiter")

    def __init__(self, activity: Activity) -> None:
        self.activity = activity
        self._waiter: asyncio.Future[None] | None = None

    def notify(self) -> None:
        """Wake the consumer if it waits."""
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            self.activity.wake()
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self, channels: tuple[Channel, ...]) -> None:
        """Wait until a channel notifies; ``channels`` are what the node waits for (stats and the watchdog)."""
        self._waiter = asyncio.get_running_loop().create_future()
        self.activity.block(channels)
        try:
            await self._waiter
        finally:
            self._waiter = None
            waited = self.activity.resume()
            for channel in channels:
                channel.stats.consumer_wait_s += waited


@dataclass
class ChannelStats:
    """Counters of one channel: messages, depth, drops and the time each side spent waiting."""

    messages: int = 0
    max_depth: int = 0
    drops: int = 0
    producer_wait_s: float = 0.0
    consumer_wait_s: float = 0.0

    def as_dict(self) -> dict[str, float]:
        """The stats as a plain dict."""
        return asdict(self)


class Channel(ABC):
    """A bounded FIFO from one producer port to one consumer port.

    The interface a cross-process channel implements too: ``put`` (blocking when full under ``block``),
    ``get_nowait``, ``close``, the consumer ``Inbox`` it wakes, and ``messages`` and ``full``, which the hot paths
    read without a call.
    """

    name: str
    capacity: int
    policy: Policy
    stats: ChannelStats
    closed: bool
    full: bool
    """A message sent now would wait for room (kept by the implementation as messages come and go: the hot path reads
    it without a call)."""
    fused: Any = None
    """The consumer node when it may fire in its producer's task (``firing.fire_fused``); ``None`` otherwise."""
    messages: deque[Message]
    """The messages waiting, oldest first. Read it (its length, its head) without a call on the hot path; change it
    only through the channel's methods, which keep its counts, its ``full`` flag and its waiting producers."""

    @abstractmethod
    async def put(self, message: Message, producer: Activity | None = None) -> None:
        """Send ``message``; under ``block`` wait while the channel is full."""

    def offer(self, message: Message) -> bool:
        """Send ``message`` if that needs no waiting; ``False`` when the caller must ``await put`` instead."""
        return False

    @abstractmethod
    def get_nowait(self) -> Message:
        """Take the oldest message; ``IndexError`` when empty."""

    def __len__(self) -> int:
        """Messages waiting."""
        return len(self.messages)

    @abstractmethod
    def close(self) -> None:
        """The producer is done: the consumer drains what is left, then sees the end of the stream."""

    @abstractmethod
    def bind(self, inbox: Inbox) -> None:
        """Attach the consumer's inbox."""

    @abstractmethod
    def release(self) -> None:
        """The consumer is done: what waits and what is sent later is dropped (counted), producers never block."""

    def snapshot(self) -> list[Message]:
        """The messages waiting, oldest first, without taking them."""
        return list(self.messages)


class LocalChannel(Channel):
    """The in-process channel: a deque, a consumer inbox and the futures of blocked producers."""

    __slots__ = ("name", "capacity", "policy", "stats", "closed", "released", "full", "fused", "_bounded", "messages",
                 "_inbox", "_putters")

    def __init__(self, name: str, capacity: int = 1, policy: Policy = "block") -> None:
        if capacity < 1:
            raise ValueError(f"channel {name}: capacity must be at least 1, got {capacity}")
        if policy not in POLICIES:
            raise ValueError(f"channel {name}: policy must be one of {POLICIES}, got {policy!r}")
        self.name = name
        self.capacity = capacity
        self.policy: Policy = policy
        self.stats = ChannelStats()
        self.closed = False
        self.released = False
        self.full = False
        self.fused = None
        self._bounded = policy == "block"
        """A full buffer makes a sender wait (``block``, until released)."""
        self.messages: deque[Message] = deque()
        self._inbox: Inbox | None = None
        self._putters: deque[tuple[asyncio.Future[None], Activity | None]] = deque()

    def bind(self, inbox: Inbox) -> None:
        """Attach the consumer's inbox."""
        self._inbox = inbox

    def offer(self, message: Message) -> bool:
        """Append ``message`` at once when there is room (the common case: no coroutine, no waiting)."""
        if len(self.messages) >= self.capacity or self.released:
            return False
        self.push(message)  # _append's work without its frame: the hot path of every message sent without waiting
        if self._inbox is not None:
            self._inbox.notify()
        return True

    async def put(self, message: Message, producer: Activity | None = None) -> None:
        """Append ``message``, waiting for room under ``block`` and dropping the oldest under ``latest``."""
        buffer = self.messages
        while len(buffer) >= self.capacity and not self.released:
            if self.policy == "latest":
                buffer.popleft()
                self.stats.drops += 1
                break
            await self._wait_for_room(producer)
        if self.released:
            self.stats.drops += 1
            return
        self._append(message)

    def _append(self, message: Message) -> None:
        self.push(message)
        if self._inbox is not None:
            self._inbox.notify()

    def append_past_capacity(self, message: Message) -> None:
        """Append ``message`` although the channel is full, waking the consumer: a node fired in its producer's task
        emitting more than one message an output from ``compute`` (``NodeIO.emit``), which must not block that task."""
        self._append(message)

    def push(self, message: Message) -> None:
        """Append ``message``, counted, without waking the consumer: its producer fires it now
        (``firing.fire_fused``)."""
        buffer = self.messages
        buffer.append(message)
        depth = len(buffer)
        if depth >= self.capacity and self._bounded:
            self.full = True
        stats = self.stats
        stats.messages += 1
        if depth > stats.max_depth:
            stats.max_depth = depth

    def prime(self, message: Message) -> None:
        """Hold ``message`` before the run starts (a primed input's start token), uncounted."""
        self.messages.append(message)
        if len(self.messages) >= self.capacity and self._bounded:
            self.full = True

    async def _wait_for_room(self, producer: Activity | None) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._putters.append((future, producer))
        if producer is not None:
            producer.block((self,))
        started = time.perf_counter()
        try:
            await future
        finally:
            self.stats.producer_wait_s += time.perf_counter() - started
            if producer is not None:
                producer.resume()

    def get_nowait(self) -> Message:
        """Take the oldest message and wake one blocked producer."""
        buffer = self.messages
        message = buffer.popleft()
        if self.full and len(buffer) < self.capacity:
            self.full = False
        putters = self._putters
        while putters:
            future, producer = putters.popleft()
            if not future.done():
                if producer is not None:
                    producer.wake()
                future.set_result(None)
                break
        return message

    def release(self) -> None:
        """Drop the waiting messages (counted) and wake every blocked producer: nobody will read this channel."""
        self.released = True
        self.full = self._bounded = False
        self.stats.drops += len(self.messages)
        self.messages.clear()
        while self._putters:
            future, producer = self._putters.popleft()
            if not future.done():
                if producer is not None:
                    producer.wake()
                future.set_result(None)

    def close(self) -> None:
        """Mark the stream ended and wake the consumer so it can notice."""
        self.closed = True
        if self._inbox is not None:
            self._inbox.notify()
