"""The firing loop of a node that keeps ``Node``'s own ``receive``/``emit`` path: the hot path of a running graph.

Equal in effect to ``Node.run``'s ``receive`` -> ``compute`` -> ``emit_all`` -> ``emit`` chain (same stamps,
sources, routes, firing counts and errors), without a coroutine per layer: a firing whose inputs are already
there is taken synchronously (``NodeIO.poll``), and a message goes into each subscriber's channel with the
synchronous ``offer`` unless the channel is full, only then through ``await put``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .channel import Message

if TYPE_CHECKING:
    from .node import Node


async def fire_loop(node: Node) -> None:
    """Fire ``node.compute`` once per complete set of inputs until the inputs end."""
    io = node.io
    assert io is not None
    poll, next_firing, compute = io.poll, io.next_firing, node.compute
    ports, subscribers, activity = node.output_ports, io.subscribers, io.activity
    wait, missing, ended = io.inbox.wait, io.missing, io.ended
    configs = bool(io.configs)
    while True:
        firing = poll()
        if firing is None:
            if not configs and not ended():
                await wait(missing())
                continue
            # Config inputs still to come, or the end: next_firing waits for them, or releases the inputs.
            firing = await next_firing()
            if firing is None:
                return
        stamp = firing.stamp
        source = firing.source
        node.stamp, node.source = stamp, source
        node.firings += 1
        outputs = await compute(**firing.values)
        if not outputs:
            continue
        for port, value in outputs.items():
            spec = ports.get(port)
            if spec is None:
                raise KeyError(f"node {node.id!r} returned unknown output {port!r}")
            message = Message(value, None if stamp is None else stamp + spec.offset, source)
            for channel, route in subscribers[port]:
                if (route is None or route == source) and not channel.offer(message):
                    await channel.put(message, activity)
