"""The native graph format (``"format": "dnne-graph"``) to ``Graph``, collecting every structural issue."""
from __future__ import annotations

from typing import Any

from ..errors import Issue
from ..graph import FORMAT_VERSION, Graph, LinkSpec, NodeSpec, split_endpoint
from .groups import expand_groups

_LINK_KEYS = {"from", "to", "capacity", "policy", "route", "stream"}


def load_native(document: dict[str, Any], issues: list[Issue], path: str | None = None) -> Graph:
    """Build a ``Graph`` from a native document (its groups expanded: ``groups``), appending what is malformed to
    ``issues``; ``path`` is the file it was read from (group files are found beside it)."""
    graph = Graph(format="native")
    repeated = getattr(document.get("nodes"), "repeated", ())  # the parser's record, before groups expand
    document, origins = expand_groups(document, issues, path)
    version = document.get("version", FORMAT_VERSION)
    if version != FORMAT_VERSION or isinstance(version, bool):
        issues.append(Issue("unsupported_version", f"version {version!r} is not supported (expected {FORMAT_VERSION})",
                            where="/version"))
    for key in document:
        if key not in {"format", "version", "nodes", "links", "run", "placement", "workers", "description", "groups"}:
            issues.append(Issue("ignored_field", f"top-level key {key!r} is not part of the format and is ignored",
                                where=f"/{_escape(key)}", severity="warning"))
    nodes = document.get("nodes", {})
    if not isinstance(nodes, dict):
        issues.append(Issue("malformed_file", "'nodes' must be an object of node id -> node", where="/nodes"))
        nodes = {}
    for node_id in repeated:
        issues.append(Issue("duplicate_node_id", f"node id {node_id!r} is written more than once", node_id,
                            where=f"/nodes/{_escape(node_id)}"))
    for node_id, body in nodes.items():
        pointer, note = origins.nodes.get(node_id) or (f"/nodes/{_escape(node_id)}", "")
        where = pointer + note
        if not node_id.strip():
            issues.append(Issue("bad_node_id", f"{node_id!r} is not a usable node id", where=where))
            continue
        if not isinstance(body, dict) or not isinstance(body.get("type"), str):
            issues.append(Issue("malformed_node", "a node must be an object with a string 'type'", node_id, where=where))
            continue
        params = body.get("params", {})
        if not isinstance(params, dict):
            issues.append(Issue("malformed_node", "'params' must be an object", node_id, where=f"{where}/params"))
            params = {}
        for key in getattr(params, "repeated", ()):
            issues.append(Issue("duplicate_param", f"param {key!r} is written more than once", node_id, key,
                                f"{where}/params/{_escape(key)}"))
        for key in body:
            if key not in {"type", "params", "title"}:
                issues.append(Issue("ignored_field", f"node key {key!r} is ignored", node_id,
                                    where=f"{where}/{_escape(key)}", severity="warning"))
        graph.nodes[node_id] = NodeSpec(
            node_id, body["type"], dict(params), where, {k: f"{pointer}/params/{_escape(k)}{note}" for k in params}
        )
    links = document.get("links", [])
    if not isinstance(links, list):
        issues.append(Issue("malformed_file", "'links' must be a list", where="/links"))
        links = []
    for index, raw in enumerate(links):
        link = _parse_link(raw, origins.links.get(index) or f"/links/{index}", issues)
        if link is not None:
            graph.links.append(link)
    run = document.get("run", {})
    if not isinstance(run, dict):
        issues.append(Issue("bad_run_option", "'run' must be an object", where="/run"))
        run = {}
    graph.run = dict(run)
    graph.placement, graph.workers = _parse_placement(document, issues)
    return graph


def _parse_link(raw: Any, where: str, issues: list[Issue]) -> LinkSpec | None:
    options: dict[str, Any] = {}
    if isinstance(raw, list) and len(raw) == 2:
        ends = raw
    elif isinstance(raw, dict) and "from" in raw and "to" in raw:
        ends = [raw["from"], raw["to"]]
        options = {k: v for k, v in raw.items() if k not in ("from", "to")}
        unknown = set(raw) - _LINK_KEYS
        if unknown:
            issues.append(Issue("bad_link", f"unknown link option(s) {sorted(unknown)}", where=where))
            return None
    else:
        issues.append(Issue("bad_link", 'a link is ["node.output", "node.input"] or {"from": ..., "to": ...}',
                            where=where))
        return None
    try:
        if not all(isinstance(end, str) for end in ends):
            raise ValueError("link ends must be strings of the form node.port")
        (src, src_port), (dst, dst_port) = split_endpoint(ends[0]), split_endpoint(ends[1])
    except ValueError as error:
        issues.append(Issue("bad_link", str(error), where=where))
        return None
    capacity = options.get("capacity")
    if capacity is not None and (isinstance(capacity, bool) or not isinstance(capacity, int) or not 1 <= capacity <= 1_000_000):
        issues.append(Issue("bad_link", f"capacity {capacity!r} must be an integer in [1, 1000000]",
                            where=f"{where}/capacity"))
        return None
    policy = options.get("policy")
    if policy is not None and policy not in ("block", "latest"):
        issues.append(Issue("bad_link", f"policy {policy!r} must be 'block' or 'latest'", where=f"{where}/policy"))
        return None
    route = options.get("route")
    if route is not None and not isinstance(route, str):
        issues.append(Issue("bad_link", "route must be a string (a stream name)", where=f"{where}/route"))
        return None
    stream = options.get("stream")
    if stream is not None and (not isinstance(stream, str) or not stream.strip() or len(stream) > 200):
        issues.append(Issue("bad_link", "stream must be a non-empty name", where=f"{where}/stream"))
        return None
    return LinkSpec(src, src_port, dst, dst_port, capacity, policy, route, where, stream)


def _parse_placement(document: dict[str, Any], issues: list[Issue]) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    placement = document.get("placement", {})
    workers = document.get("workers", {})
    if not isinstance(placement, dict) or not all(isinstance(v, str) for v in placement.values()):
        issues.append(Issue("bad_placement", "'placement' must map node ids to worker names", where="/placement"))
        placement = {}
    if not isinstance(workers, dict) or not all(isinstance(v, dict) for v in workers.values()):
        issues.append(Issue("bad_placement", "'workers' must map worker names to option objects", where="/workers"))
        workers = {}
    return dict(placement), {k: dict(v) for k, v in workers.items()}


def _escape(key: str) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")
