"""DNNE / ComfyUI workflow files (v0.4 link arrays, v1.0 link objects) and ComfyUI API prompts to ``Graph``.

Slots resolve through the socket names written in the file, never through our own port order; widget values map
by the node type's declared widget order. Muted nodes are dropped, bypassed nodes pass inputs through, ``Reroute``
nodes are spliced out, ``PrimitiveNode`` values become the widget values they feed and ``Note`` nodes are skipped.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import Issue
from ..graph import Graph, LinkSpec, NodeSpec
from ..node import Node, canonical_name
from ..registry import NodeRegistry

FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
MUTED, BYPASSED = 2, 4
PLACEHOLDER = "context"


@dataclass
class _Wire:
    """One file link resolved to node ids and socket names."""

    src: str
    src_socket: str
    dst: str
    dst_socket: str
    where: str


@dataclass
class _Nodes:
    raw: dict[str, dict[str, Any]] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)


def load_workflow(document: dict[str, Any], registry: NodeRegistry, issues: list[Issue]) -> Graph:
    """Build a ``Graph`` from a DNNE/ComfyUI workflow document."""
    graph = Graph(format="workflow")
    nodes = _Nodes()
    for index, raw in enumerate(document.get("nodes", [])):
        where = f"/nodes/{index}"
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str) or isinstance(raw.get("id"), bool) \
                or not isinstance(raw.get("id"), (int, str)):
            issues.append(Issue("malformed_node", "a workflow node needs an integer 'id' and a string 'type'",
                                where=where))
            continue
        node_id = str(raw["id"])
        if node_id in nodes.raw:
            issues.append(Issue("duplicate_node_id", f"node id {node_id} appears twice", node_id, where=where))
            continue
        nodes.raw[node_id], nodes.where[node_id] = raw, where
    wires = _read_links(document.get("links", []), nodes, issues)
    primitives = {nid for nid, raw in nodes.raw.items() if raw["type"] == "PrimitiveNode"}
    for node_id, raw in nodes.raw.items():
        if raw["type"] in FRONTEND_ONLY or raw.get("mode", 0) == MUTED:
            continue
        spec = NodeSpec(node_id, raw["type"], {}, nodes.where[node_id])
        cls = registry.get(raw["type"])
        if cls is not None:
            _read_widgets(spec, raw, cls, issues)
        graph.nodes[node_id] = spec
    wires = _splice_reroutes(wires, nodes)
    for wire in wires:
        if wire.src in primitives:
            _apply_primitive(wire, nodes, graph, issues)
    wires = [w for w in wires if w.src not in primitives]
    wires = _bypass(wires, nodes, graph, registry)
    for wire in wires:
        if wire.src not in graph.nodes or wire.dst not in graph.nodes:
            continue  # an end was muted or is frontend-only
        if _is_widget_socket(nodes.raw[wire.dst], wire.dst_socket):
            issues.append(Issue("unknown_port", f"widget {wire.dst_socket!r} is fed by node {wire.src}, which only a "
                                "PrimitiveNode may do", wire.dst, wire.dst_socket, wire.where))
            continue
        graph.links.append(LinkSpec(wire.src, wire.src_socket, wire.dst, wire.dst_socket, where=wire.where))
    return graph


def load_api_prompt(document: dict[str, Any], registry: NodeRegistry, issues: list[Issue]) -> Graph:
    """Build a ``Graph`` from a ComfyUI API prompt (``{"3": {"class_type": ..., "inputs": {...}}}``)."""
    graph = Graph(format="api")
    for node_id, body in document.items():
        where = f"/{node_id}"
        node_type = body.get("class_type")
        inputs = body.get("inputs", {})
        if not isinstance(node_type, str) or not isinstance(inputs, dict):
            issues.append(Issue("malformed_node", "a prompt entry needs a string 'class_type' and an object 'inputs'",
                                node_id, where=where))
            continue
        spec = NodeSpec(node_id, node_type, {}, where)
        graph.nodes[node_id] = spec
        cls = registry.get(node_type)
        for name, value in inputs.items():
            place = f"{where}/inputs/{name}"
            # a list param ("hidden_sizes": [64, 64]) looks like a link; the node type says which it is
            is_param = cls is not None and canonical_name(cls.input_ports, name) is None \
                and canonical_name(cls.param_specs, name) is not None
            if not is_param and isinstance(value, list) and len(value) == 2 \
                    and isinstance(value[0], (str, int)) and not isinstance(value[0], bool) \
                    and isinstance(value[1], int) and not isinstance(value[1], bool):
                src = str(value[0])
                if src not in document:
                    issues.append(Issue("dangling_link", f"input {name!r} is linked to node {src}, which is not in "
                                        "the prompt", node_id, name, place))
                    continue
                src_socket = _api_output_name(document.get(src), value[1], registry)
                if src_socket is None:
                    issues.append(Issue("bad_slot_index", f"node {src} has no output {value[1]}", node_id, name, place))
                    continue
                graph.links.append(LinkSpec(src, src_socket, node_id, name, where=place))
            else:
                spec.params[name] = value
                spec.param_where[name] = place
    return graph


def output_order(cls: type[Node]) -> list[str]:
    """Output sockets in DNNE's order (placeholders included) or in declaration order."""
    if cls.dnne is not None and cls.dnne.outputs:
        return list(cls.dnne.outputs)
    return list(cls.output_ports)


def widget_order(cls: type[Node]) -> list[str]:
    """Param names in ``widgets_values`` order."""
    if cls.dnne is not None:
        return list(cls.dnne.widgets)
    return list(cls.param_specs)


def _api_output_name(body: Any, index: int, registry: NodeRegistry) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("class_type"), str):
        return None
    cls = registry.get(body["class_type"])
    if cls is None:
        return f"#{index}"
    order = output_order(cls)
    return order[index] if 0 <= index < len(order) else None


def _read_links(raw_links: Any, nodes: _Nodes, issues: list[Issue]) -> list[_Wire]:
    wires: list[_Wire] = []
    if not isinstance(raw_links, list):
        issues.append(Issue("malformed_file", "'links' must be a list", where="/links"))
        return wires
    for index, raw in enumerate(raw_links):
        where = f"/links/{index}"
        if isinstance(raw, list) and len(raw) >= 5:
            _, src, src_slot, dst, dst_slot = raw[:5]
        elif isinstance(raw, dict) and {"origin_id", "origin_slot", "target_id", "target_slot"} <= set(raw):
            src, src_slot, dst, dst_slot = raw["origin_id"], raw["origin_slot"], raw["target_id"], raw["target_slot"]
        else:
            issues.append(Issue("bad_link", "a link is [id, from_node, from_slot, to_node, to_slot, type] or an "
                                "object with origin_id/origin_slot/target_id/target_slot", where=where))
            continue
        if not all(isinstance(v, (int, str)) and not isinstance(v, bool) for v in (src, dst)) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in (src_slot, dst_slot)):
            issues.append(Issue("bad_link", "link node ids and slots must be integers", where=where))
            continue
        src, dst = str(src), str(dst)
        missing = [n for n in (src, dst) if n not in nodes.raw]
        if missing:
            issues.append(Issue("dangling_link", f"link refers to node {missing[0]}, which is not in the file",
                                where=where))
            continue
        src_name = _socket_name(nodes.raw[src], "outputs", src_slot)
        dst_name = _socket_name(nodes.raw[dst], "inputs", dst_slot)
        if src_name is None:
            issues.append(Issue("bad_slot_index", f"node {src} has no output slot {src_slot}", src, where=where))
            continue
        if dst_name is None:
            issues.append(Issue("bad_slot_index", f"node {dst} has no input slot {dst_slot}", dst, where=where))
            continue
        wires.append(_Wire(src, src_name, dst, dst_name, where))
    return wires


def _socket_name(raw: dict[str, Any], key: str, slot: int) -> str | None:
    sockets = raw.get(key) or []
    if raw.get("type") in ("Reroute", "PrimitiveNode") and not sockets:
        return "output" if key == "outputs" else "input"
    if not isinstance(sockets, list) or not 0 <= slot < len(sockets):
        return None
    socket = sockets[slot]
    if not isinstance(socket, dict) or not isinstance(socket.get("name"), str):
        return None
    return socket["name"]


def _is_widget_socket(raw: dict[str, Any], name: str) -> bool:
    return any(isinstance(s, dict) and s.get("name") == name and "widget" in s for s in raw.get("inputs") or [])


def _read_widgets(spec: NodeSpec, raw: dict[str, Any], cls: type[Node], issues: list[Issue]) -> None:
    values = raw.get("widgets_values", [])
    if isinstance(values, dict):
        for name, value in values.items():
            spec.params[name] = value
            spec.param_where[name] = f"{spec.where}/widgets_values/{name}"
        return
    if not isinstance(values, list):
        issues.append(Issue("malformed_node", "'widgets_values' must be a list", spec.id,
                            where=f"{spec.where}/widgets_values"))
        return
    order = widget_order(cls)
    if values and len(values) != len(order):
        issues.append(Issue(
            "widget_count_mismatch",
            f"{len(values)} widget values for {cls.type_name()}, which has {len(order)} widgets "
            f"({', '.join(order) or 'none'})",
            spec.id, where=f"{spec.where}/widgets_values",
        ))
    for index, (name, value) in enumerate(zip(order, values)):
        spec.params[name] = value
        spec.param_where[name] = f"{spec.where}/widgets_values/{index}"


def _splice_reroutes(wires: list[_Wire], nodes: _Nodes) -> list[_Wire]:
    reroutes = {nid for nid, raw in nodes.raw.items() if raw["type"] == "Reroute"}
    feeds = {w.dst: w for w in wires if w.dst in reroutes}
    spliced = []
    for wire in wires:
        if wire.dst in reroutes:
            continue
        seen: set[str] = set()
        while wire.src in reroutes and wire.src in feeds and wire.src not in seen:
            seen.add(wire.src)
            upstream = feeds[wire.src]
            wire = _Wire(upstream.src, upstream.src_socket, wire.dst, wire.dst_socket, wire.where)
        if wire.src not in reroutes:
            spliced.append(wire)
    return spliced


def _apply_primitive(wire: _Wire, nodes: _Nodes, graph: Graph, issues: list[Issue]) -> None:
    values = nodes.raw[wire.src].get("widgets_values") or []
    target = graph.nodes.get(wire.dst)
    if target is None:
        return
    if not isinstance(values, list) or not values:
        issues.append(Issue("malformed_node", "a PrimitiveNode without a value", wire.src, where=wire.where))
        return
    target.params[wire.dst_socket] = values[0]
    target.param_where[wire.dst_socket] = f"{nodes.where[wire.src]}/widgets_values/0"


def _bypass(wires: list[_Wire], nodes: _Nodes, graph: Graph, registry: NodeRegistry) -> list[_Wire]:
    bypassed = {nid for nid, raw in nodes.raw.items() if raw.get("mode", 0) == BYPASSED}
    if not bypassed:
        return wires
    feeding: dict[str, list[_Wire]] = {}
    for wire in wires:
        feeding.setdefault(wire.dst, []).append(wire)
    result = [w for w in wires if w.src not in bypassed and w.dst not in bypassed]
    for wire in wires:
        if wire.src not in bypassed or wire.dst in bypassed:
            continue
        upstream = _bypass_source(wire.src, wire.src_socket, feeding, nodes, registry)
        if upstream is not None:
            result.append(_Wire(upstream[0], upstream[1], wire.dst, wire.dst_socket, wire.where))
    for node_id in bypassed:
        graph.nodes.pop(node_id, None)
    return result


def _bypass_source(node_id: str, socket: str, feeding: dict[str, list[_Wire]], nodes: _Nodes,
                   registry: NodeRegistry) -> tuple[str, str] | None:
    """The producer feeding bypassed ``node_id``'s first input whose declared type equals the output's, followed
    through chains of bypassed nodes (iteratively: a chain may be thousands of nodes long)."""
    seen: set[str] = set()
    while node_id not in seen:
        seen.add(node_id)
        cls = registry.get(nodes.raw[node_id]["type"])
        out_name = canonical_name(cls.output_ports, socket) if cls is not None else None
        if cls is None or out_name is None:
            return None
        out_type = cls.output_ports[out_name].type
        for wire in feeding.get(node_id, ()):
            in_name = canonical_name(cls.input_ports, wire.dst_socket)
            if in_name is not None and cls.input_ports[in_name].type == out_type:
                break
        else:
            return None
        if nodes.raw[wire.src].get("mode", 0) != BYPASSED:
            return wire.src, wire.src_socket
        node_id, socket = wire.src, wire.src_socket
    return None
