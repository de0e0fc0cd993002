"""The two runtime nodes that stand in for a crossing link: ``RemoteSend`` next to the producer and
``RemoteReceive`` next to the consumer. ``split_graph`` inserts them; nobody writes them in a graph file."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..node import Node
from ..ports import Input, Output, Param

ENDPOINT = "dnne.placement.endpoint"
"""The ``RunContext.shared`` name under which a process's ``Endpoint`` is installed before setup."""
SEND_TYPE = "_dnne_remote_send"
RECEIVE_TYPE = "_dnne_remote_receive"


def endpoint_of(node: Node) -> Any:
    """The endpoint of the node's process (installed by the main process's ``Placement`` or the worker)."""
    return node.ctx.shared(ENDPOINT, _no_endpoint)


def _no_endpoint() -> Any:
    raise RuntimeError("this graph holds placement proxies but runs without a placement endpoint")


class RemoteSend(Node):
    """Sends every message of ``x`` over crossing link ``link``; at setup, sends what its upstream declared."""

    category = "placement"

    x = Input("Any", "the producer's messages")
    link = Param(int, doc="the crossing link's index", ge=0, le=10**9)

    async def setup(self) -> None:
        refused = endpoint_of(self).declare(self.link, upstream_declarations(self))
        if refused:
            self.ctx.warn(f"declarations {', '.join(sorted(refused))} cannot cross a process boundary: the nodes "
                          "on the other side do not see them")

    async def run(self) -> None:
        endpoint = endpoint_of(self)
        waiting = (Crossing(f"link {self.link} out of this process (no credit)"),)
        assert self.io is not None
        while (firing := await self.receive()) is not None:
            if not endpoint.has_credit(self.link):
                self.io.activity.block(waiting)
            try:
                await endpoint.send(self.link, firing.values["x"], firing.stamp, firing.source)
            finally:  # a stop while it waits for credit still counts the wait as blocked
                self.io.activity.resume()
        endpoint.end(self.link)


class RemoteReceive(Node):
    """Re-emits what arrives on crossing link ``link``, stamp and source kept; at setup (when the producer is set
    up first in one process too), re-declares what the producer's side declared."""

    category = "placement"

    out = Output("Any", "the producer's messages")
    link = Param(int, doc="the crossing link's index", ge=0, le=10**9)
    upstream_node = Param(str, doc="the producer's node id (the source of unnamed messages into a fan-in input)")
    fan_in = Param(bool, False, "the consumer's input is fan-in")
    wait_declarations = Param(bool, True, "wait at setup for the producer side's declarations")

    async def setup(self) -> None:
        """Name the producer it relays; re-declare what the producer's side declared."""
        self.ctx.relay_for(self.upstream_node)
        if self.wait_declarations:
            for key, value in (await endpoint_of(self).declarations(self.link)).items():
                self.declare(key, value)

    async def run(self) -> None:
        endpoint = endpoint_of(self)
        waiting = (Crossing(f"{self.upstream_node} -> (link {self.link} into this process)"),)
        assert self.io is not None
        while True:
            if not endpoint.ready(self.link):
                self.io.activity.block(waiting)
            try:
                received = await endpoint.receive(self.link)
            finally:  # a stop while it waits for a frame still counts the wait as blocked
                self.io.activity.resume()
            if received is None:
                break
            value, stamp, source = received
            if source is None and self.fan_in:
                source = self.upstream_node  # what the consumer's channel would have named in one process
            await self.emit("out", value, stamp, source)
            endpoint.grant(self.link)


@dataclass(frozen=True)
class Crossing:
    """A crossing link as the deadlock watchdog names what a proxy waits on."""

    name: str


def upstream_declarations(node: Node) -> dict[str, Any]:
    """Every declaration reachable upstream of ``node``, the nearest one winning per key (as ``upstream`` finds)."""
    run = node.ctx.run
    found: dict[str, Any] = {}
    for upstream in run.upstream_nodes(node.id):
        for key, value in run.contexts[upstream].declarations.items():
            found.setdefault(key, value)
    return found


def add_proxies(registry: Any) -> None:
    """Register the proxy node types in ``registry`` (idempotent)."""
    registry.add_node(RemoteSend, SEND_TYPE)
    registry.add_node(RemoteReceive, RECEIVE_TYPE)

