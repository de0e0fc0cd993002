"""Reply links: a link that a graph implies without writing it.

A node may take answers to one of its outputs on one of its inputs (``Input(reply_to="out")``), and a node may
answer whoever feeds one of its inputs on one of its outputs (``Input(reply_on="answer")``). A link from the first
node's ``out`` to the second node's input then implies the link back, ``second.answer -> first.input``: the graph
builder adds it when the file does not write it, so a file that writes only the forward link runs as one that writes
both. Added links are ordinary links from then on (``dnne convert`` and the run directory's ``graph.json`` show
them); they close a feedback loop, so they do not order setup, and they keep the newest reply (``latest``) so an
answerer is never blocked by the node it answers.
"""
from __future__ import annotations

from .errors import Issue
from .graph import LinkSpec
from .node import Node
from .registry import NodeRegistry


def reply_links(classes: dict[str, type[Node]], links: list[LinkSpec], registry: NodeRegistry,
                issues: list[Issue]) -> list[LinkSpec]:
    """The reply links ``links`` imply and do not hold yet; a reply whose types do not fit is an issue.

    An input that takes one link and is already linked by the file keeps that link: nothing is added to it.

    Args:
        classes: the node class of every known node id.
        links: the valid links of the graph, canonical port names.
        registry: the port types, to check that a reply can be read by the input it goes to.
        issues: where a reply that cannot be linked is reported.
    """
    present = {(link.src, link.src_port, link.dst, link.dst_port) for link in links}
    fed = {(link.dst, link.dst_port) for link in links}
    added: list[LinkSpec] = []
    for link in links:
        asker, answerer = classes.get(link.src), classes.get(link.dst)
        if asker is None or answerer is None:
            continue
        reply_on = answerer.input_ports[link.dst_port].reply_on
        if reply_on is None:
            continue
        for name, port in asker.input_ports.items():
            ends = (link.dst, reply_on, link.src, name)
            if port.reply_to != link.src_port or ends in present or ((link.src, name) in fed and not port.fan_in):
                continue
            out_type = answerer.output_ports[reply_on].type
            if registry.types.converter(out_type, port.type) is None:
                issues.append(Issue("type_mismatch", f"the reply {link.dst}.{reply_on} -> {link.src}.{name} that "
                                    f"the link {link} implies carries {out_type}, which input {name!r} ({port.type}) "
                                    "cannot read", link.src, name, link.where))
                continue
            present.add(ends)
            fed.add((link.src, name))
            added.append(LinkSpec(*ends, policy="latest", where=link.where))
    return added
