"""Named streams: the messages that reach a fan-in input through one link form a stream, named by the link's
``stream`` (default: its source node's id); a link's ``route`` delivers only the messages of one stream.

Nodes carry a message's stream on to what they emit (``Firing.source``), so a route may name a stream declared
anywhere upstream; a node that names the streams of its own messages says so (``Node.streams``). A route naming a stream that no link declares could never deliver anything: a validation
error (``unknown_stream``), as is a ``stream`` on a link into an input that is not fan-in (``bad_stream``).
"""
from __future__ import annotations

from .errors import Issue
from .graph import Graph, LinkSpec
from .node import Node
from .placement.proxies import RECEIVE_TYPE


def declared_streams(graph: Graph, classes: dict[str, type[Node]], links: list[LinkSpec]) -> set[str]:
    """The stream names of a graph: one per validated link into a fan-in input, and those nodes name
    (``Node.streams``)."""
    streams = {link.stream or link.src for link in links
               if link.dst in classes and link.dst_port in classes[link.dst].input_ports
               and classes[link.dst].input_ports[link.dst_port].fan_in}
    for node_id, cls in classes.items():
        streams |= cls.streams(graph.nodes[node_id].params)
    return streams


def check_streams(graph: Graph, classes: dict[str, type[Node]], links: list[LinkSpec]) -> list[Issue]:
    """Every route names a declared stream; every declared name sits on a link into a fan-in input. A part of a
    split graph (it receives from other processes, ``placement``) takes streams declared elsewhere: its routes
    were checked when the whole graph was."""
    issues = []
    from_elsewhere = any(spec.type == RECEIVE_TYPE for spec in graph.nodes.values())
    streams = declared_streams(graph, classes, links)
    for link in links:
        port = classes[link.dst].input_ports.get(link.dst_port) if link.dst in classes else None
        if link.stream is not None and port is not None and not port.fan_in:
            issues.append(Issue("bad_stream", f"{link} names stream {link.stream!r}, but input {link.dst_port!r} "
                                "takes one link: only links into a fan-in input form streams", link.dst,
                                link.dst_port, link.where))
        if link.route is not None and link.route not in streams and not from_elsewhere:
            known = ", ".join(sorted(streams)) or "none"
            issues.append(Issue("unknown_stream", f"{link} routes stream {link.route!r}, which no link declares "
                                f"(streams: {known})", link.dst, link.dst_port, link.where))
    return issues
