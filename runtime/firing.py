"""The firing loop of a node that keeps ``Node``'s own ``receive``/``emit`` path: the hot path of a running graph.

Equal in effect to ``Node.run``'s ``receive`` -> ``compute`` -> ``emit_all`` -> ``emit`` chain (same stamps,
sources, routes, firing counts and errors), without a coroutine per layer: a firing whose inputs are already
there is taken synchronously (``NodeIO.poll``), and a message goes into each subscriber's channel with the
synchronous ``offer`` unless the channel is full, only then through ``await put``.

Chains fire as one task (``run.fuse_chains``, on by default): a subscriber that waits between firings, with no
stop points, room on every output and (unless it reads them itself) its config inputs set, is fired by its
producer, in the producer's task, on the message it sends to one of its streaming inputs (when that link has room
for it), with every firing that message completes (``fire_fused``): no wake-up, no task switch. That is a node
running this loop, a merge once its other links can bring nothing more, or a node with its own loop that fires
through ``Node.fire_ready`` and waits through ``NodeIO.wait_idle``. Only one message of a firing goes that way (the
last whose link may fuse), once every other is in its channel (a message behind it that must wait for room sends it
first, as it is), and ``emit`` inside ``compute`` fires nothing, so no consumer fires before the producer has sent
all it sends. Its stamps, sources, firing count, busy and blocked time, channel counts and errors are what its own
task would have had; its own task stays parked in its wait, takes no firing while a producer fires it, and takes
over whenever the producer cannot (a full output, a config input still to come). A chain that never waits still
lets the event loop turn every ``YIELD_EVERY`` firings of a node, and once its run stops nothing fuses (a loop of
fused nodes would otherwise fire on past the stop).
"""
from __future__ import annotations

import asyncio
from time import perf_counter
from typing import TYPE_CHECKING, Any

from .channel import Activity, Channel, Message

if TYPE_CHECKING:
    from .node import Node


YIELD_EVERY = 64
"""A node fired this many times in a row in other tasks lets the event loop turn once."""


class FusedFailure(Exception):
    """A node fired in its producer's task raised: the failure is that node's, not the producer's."""

    def __init__(self, node_id: str, cause: Exception) -> None:
        super().__init__(f"node {node_id!r} failed: {cause}")
        self.node_id = node_id
        self.cause = cause


async def fire_loop(node: Node) -> None:
    """Fire ``node.compute`` once per complete set of inputs until the inputs end."""
    io = node.io
    assert io is not None
    poll, next_firing = io.poll, io.next_firing
    wait, missing, ended = io.inbox.wait, io.missing, io.ended
    configs = bool(io.configs)
    try:
        while True:
            if io.fusing:  # a producer fires it now: that firing takes what completes, in order, until it is done
                await io.fused_settled()
            firing = poll()
            if firing is None:
                io.idle = True  # while it waits, a producer may fire it (fire_fused)
                if not configs and not ended():
                    await wait(missing())
                    io.idle = False
                    continue
                # Config inputs still to come, or the end: next_firing waits for them, or releases the inputs.
                firing = await next_firing()
                io.idle = False
                if firing is None:
                    await io.fused_settled()  # a producer may still be firing it: the node ends after that firing
                    return
            await fire_values(node, firing.values, firing.stamp, firing.source)
    finally:
        io.idle = False  # ended, failed or cancelled: no producer fires it any more


async def fire_values(node: Node, values: dict[str, Any], stamp: int | None, source: str | None) -> None:
    """Run ``compute`` on one firing's ``values`` and send its outputs, stamped with ``stamp`` plus each output's
    offset."""
    node.stamp, node.source = stamp, source
    node.firings += 1
    io = node.io
    assert io is not None
    io.computing = True
    try:
        outputs = await node.compute(**values)
    finally:
        io.computing = False
    if not outputs:
        return
    ports, subscribers = node.output_ports, io.subscribers
    deliveries = []
    for port, value in outputs.items():
        spec = ports.get(port)
        if spec is None:
            raise KeyError(f"node {node.id!r} returned unknown output {port!r}")
        targets = subscribers[port]
        if not targets:
            continue
        message = Message(value, None if stamp is None else stamp + spec.offset, source)
        for channel, route in targets:
            if route is None or route == source:
                deliveries.append((channel, message))
    if len(deliveries) == 1:  # one output, one subscriber: the chain's case, without deliver's frame
        channel, message = deliveries[0]
        if (consumer := fusable_consumer(channel)) is not None:
            await fire_fused(consumer, channel, message, io.activity)
        elif not channel.offer(message):
            await channel.put(message, io.activity)
    elif deliveries:
        await deliver(deliveries, io.activity)


def fusable_consumer(channel: Channel) -> Node | None:
    """The consumer of ``channel`` when a message sent on it now may fire it in the sender's task (the channel has
    room for it: what the consumer does not fire at once waits there, within the capacity)."""
    consumer = channel.fused
    if consumer is None or channel.full or consumer.ctx.run.halting:
        return None  # once the run stops, consumers fire in their own tasks until they are cancelled, as unfused
    return consumer if consumer.io.fusable_now(channel) else None


async def deliver(deliveries: list[tuple[Channel, Message]], activity: Activity) -> None:
    """Send a firing's messages, waiting on full channels; the consumer of one of them fires in this task when it
    can fire now (``fire_fused``). That message is the last one whose link may fuse, and it goes last: every other
    message is in its channel before any consumer fires, as when consumers fire in their own tasks. A message
    behind it that must wait for room sends it first, as it is (its consumer may be what frees that room)."""
    fused = len(deliveries) - 1
    while fused >= 0 and ((consumer := deliveries[fused][0].fused) is None or not consumer.io.fusable):
        fused -= 1
    for index, (channel, message) in enumerate(deliveries):
        if index == fused or channel.offer(message):
            continue
        if 0 <= fused < index:
            held, held_message = deliveries[fused]
            fused = -1
            if not held.offer(held_message):
                await held.put(held_message, activity)
        await channel.put(message, activity)
    if fused >= 0:
        channel, message = deliveries[fused]
        if (consumer := fusable_consumer(channel)) is not None:
            await fire_fused(consumer, channel, message, activity)
        elif not channel.offer(message):
            await channel.put(message, activity)


async def fire_fused(node: Node, channel: Channel, message: Message, producer: Activity) -> None:
    """Fire ``node`` in the calling task on ``message``, sent on ``channel`` (one of its streaming inputs), and on
    every firing that completes with it (see the module doc); the time is the node's busy time, lent by the
    ``producer``. The caller checked ``NodeIO.fusable_now``."""
    io = node.io
    assert io is not None
    activity = io.activity
    io.fusing = True
    started = activity.fused_since = perf_counter()
    try:
        if io.fires_ready:  # a node with its own loop: it fires on what the message completes, as in that loop
            channel.push(message)
            while await node.fire_ready():
                if not io.outputs_have_room():
                    io.inbox.notify()
                    break
        elif (direct := io.direct.get(channel)) is not None and not channel.messages and not direct.slot.pulled:
            # the common case: nothing waits before the message on its input, so it is the next firing (io.direct)
            stats = channel.stats
            stats.messages += 1
            if not stats.max_depth:
                stats.max_depth = 1
            values, stamp, source = io.lone_firing(direct, message)
            await fire_values(node, values, stamp, source)
        else:  # a join, or input waiting before the message: fire whatever the join completes, in order
            channel.push(message)
            while (firing := io.poll()) is not None:
                await fire_values(node, firing.values, firing.stamp, firing.source)
                if not io.outputs_have_room():
                    io.inbox.notify()  # what a full output keeps from firing here, its own task fires
                    break
    except FusedFailure:
        raise
    except Exception as error:
        raise FusedFailure(node.id, error) from error
    finally:
        activity.fused_since = None
        io.end_fusing()
        elapsed = perf_counter() - started
        producer.lent_s += elapsed
        if activity.waiting:  # parked in its own wait all along: its firing here is busy time, not blocked
            activity.shift(elapsed)
    io.fused_streak += 1
    if io.fused_streak >= YIELD_EVERY:  # a chain never waits: give the event loop (timers, other sources) a turn
        io.fused_streak = 0
        await asyncio.sleep(0)
