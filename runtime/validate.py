"""Validation before anything runs: every error collected, each with a code, a node, a field and a place."""
from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

from .channel import POLICIES
from .errors import Issue
from .firing_rules import Window
from .graph import Graph, LinkSpec
from .node import Node, canonical_name
from .ports import Input, ParamError
from .registry import NodeRegistry
from .replies import reply_links
from .streams import check_streams
from .types import identity
from .wiring import check_wiring

MAX_NUM_NODES = 10_000
MAX_CAPACITY = 1_000_000


def validate(graph: Graph, registry: NodeRegistry, settings: dict[str, Any] | None = None,
             run_readable: bool = True) -> list[Issue]:
    """Check ``graph`` against the registry; canonicalises param and port names in place.

    ``settings`` is the run section the nodes will read, when it is not the graph's own: a part of a split graph
    keeps no stop conditions in its run section, but its nodes see the whole graph's (``check_params`` gets it as
    ``run``). ``run_readable`` false: the file's run section could not be read (already an issue), and checks
    against it are left out (``run`` is ``None``) rather than piled on top.

    Returns every issue found (errors and warnings). A node of an unknown type is reported once; its links and
    params are not reported again.
    """
    issues: list[Issue] = []
    if len(graph.nodes) > MAX_NUM_NODES:
        return [Issue("too_many_nodes", f"{len(graph.nodes)} nodes is more than {MAX_NUM_NODES}")]
    classes: dict[str, type[Node]] = {}
    checked: set[str] = set()
    trusted = {"device": graph.run.get("device"), "allowed_modules": graph.allowed_modules,
               "run": dict(graph.run if settings is None else settings) if run_readable else None}
    for spec in graph.nodes.values():
        cls = registry.get(spec.type)
        if cls is None:
            known = ", ".join(sorted(registry.nodes)) or "none"
            issues.append(Issue("unknown_node_type", f"unknown node type {spec.type!r}{did_you_mean(spec.type, registry.nodes)}"
                                f" (known: {known})", spec.id, where=spec.where))
            continue
        classes[spec.id] = cls
        if _check_params(spec.id, cls, spec.params, spec.param_where, spec.where, issues):
            checked.add(spec.id)
            _check_node(spec.id, cls, spec.params, spec.param_where, spec.where, trusted, issues)
    refused: list[LinkSpec] = []
    valid_links = _check_links(graph, classes, registry, issues, refused)
    valid_links += reply_links(classes, valid_links, registry, issues)
    _check_required_inputs(graph, classes, valid_links + refused + _links_from_unknown_types(graph, classes), issues)
    _check_unused_outputs(graph, classes, valid_links, issues)
    _check_loops(graph, classes, valid_links, issues)
    issues.extend(check_streams(graph, classes, valid_links))
    _check_offsets(classes, valid_links, registry, issues)
    issues.extend(_duplicate_links(valid_links))
    issues.extend(check_wiring(graph, classes, checked, valid_links, trusted))
    _check_run(graph, registry, issues)
    _check_placement(graph, classes, valid_links, registry, issues)
    graph.links = valid_links
    return issues


def _check_params(node_id: str, cls: type[Node], params: dict[str, Any], param_where: dict[str, str], where: str,
                  issues: list[Issue]) -> bool:
    """Coerce ``params`` to their canonical names and types in place; whether every param was good."""
    count = len(issues)
    canonical: dict[str, Any] = {}
    places: dict[str, str] = {}
    for written, value in params.items():
        place = param_where.get(written, where)
        name = canonical_name(cls.param_specs, written)
        if name is None:
            issues.append(Issue("unknown_param", f"{cls.type_name()} has no param {written!r}"
                                f"{did_you_mean(written, cls.param_specs)} (params: {', '.join(cls.param_specs) or 'none'})",
                                node_id, written, place))
            continue
        if name in canonical:
            issues.append(Issue("duplicate_param", f"{written!r} sets {name!r} a second time", node_id, written, place))
            continue
        try:
            canonical[name] = cls.param_specs[name].coerce(value)
        except ParamError as error:
            issues.append(Issue(error.code, str(error), node_id, name, place))
            continue
        except OverflowError:
            issues.append(Issue("number_too_large", f"{name}: the number is too large", node_id, name, place))
            continue
        places[name] = place
    for name, spec in cls.param_specs.items():
        if spec.required and name not in canonical:
            issues.append(Issue("missing_required_param", f"param {name!r} must be set ({spec.doc})", node_id, name,
                                where))
    params.clear()
    params.update(canonical)
    param_where.clear()
    param_where.update(places)
    return len(issues) == count


def _check_node(node_id: str, cls: type[Node], params: dict[str, Any], param_where: dict[str, str], where: str,
                trusted: dict[str, Any], issues: list[Issue]) -> None:
    """A node type's own checks of its params together (``check_params``), run before anything is built, so a
    value the node would refuse at setup is refused by ``dnne validate`` too."""
    device = params.get("device") if "device" in cls.param_specs else None
    if isinstance(device, str) and (problem := device_problem(device)):
        issues.append(Issue("bad_device", problem, node_id, "device", param_where.get("device", where)))
    check = getattr(cls, "check_params", None)
    if check is None:
        return
    full = {name: params.get(name, spec.default) for name, spec in cls.param_specs.items()}
    for code, name, message in check(full, trusted):
        issues.append(Issue(code, message, node_id, name, param_where.get(name, where) if name else where))


def _check_links(graph: Graph, classes: dict[str, type[Node]], registry: NodeRegistry, issues: list[Issue],
                 refused: list[LinkSpec]) -> list[LinkSpec]:
    """The valid links; links refused only for their options go to ``refused`` (their input is not missing)."""
    valid: list[LinkSpec] = []
    fed: dict[tuple[str, str], LinkSpec] = {}
    for link in graph.links:
        missing = [node_id for node_id in dict.fromkeys((link.src, link.dst)) if node_id not in graph.nodes]
        if missing:
            names = " and ".join(repr(node_id) for node_id in missing)
            hint = "".join(did_you_mean(node_id, graph.nodes) for node_id in missing)
            issues.append(Issue("dangling_link", f"link {link} names node {names}, which is not in the graph{hint}",
                                where=link.where))
            continue
        if link.src not in classes or link.dst not in classes:
            continue
        src_cls, dst_cls = classes[link.src], classes[link.dst]
        out_name = canonical_name(src_cls.output_ports, link.src_port)
        in_name = canonical_name(dst_cls.input_ports, link.dst_port)
        if out_name is None:
            issues.append(Issue("unknown_port", f"{src_cls.type_name()} has no output {link.src_port!r}"
                                f"{did_you_mean(link.src_port, src_cls.output_ports)} (outputs: "
                                f"{', '.join(src_cls.output_ports) or 'none'})", link.src, link.src_port, link.where))
        if in_name is None:
            issues.append(Issue("unknown_port", f"{dst_cls.type_name()} has no input {link.dst_port!r}"
                                f"{did_you_mean(link.dst_port, dst_cls.input_ports)} (inputs: "
                                f"{', '.join(dst_cls.input_ports) or 'none'})", link.dst, link.dst_port, link.where))
        if out_name is None or in_name is None:
            continue
        out_type, in_type = src_cls.output_ports[out_name].type, dst_cls.input_ports[in_name].type
        converter = registry.types.converter(out_type, in_type)
        if converter is None:
            issues.append(Issue("type_mismatch", f"{link.src}.{out_name} sends {out_type}, but {link.dst}.{in_name} "
                                f"takes {in_type}", link.dst, in_name, link.where))
            continue
        if converter is not identity and not _reads(dst_cls.input_ports[in_name], out_type, registry):
            issues.append(Issue("implicit_conversion", f"{link.src}.{out_name} sends {out_type}, which "
                                f"{link.dst}.{in_name} ({in_type}) does not take: a conversion must be explicit, place "
                                f"a node that converts {out_type} to {in_type} between them", link.dst, in_name,
                                link.where))
            refused.append(LinkSpec(link.src, out_name, link.dst, in_name))
            continue
        previous = fed.get((link.dst, in_name))
        if previous is not None and not dst_cls.input_ports[in_name].fan_in:
            issues.append(Issue("too_many_links", f"input {in_name!r} takes one link; it is fed by {previous} and "
                                f"{link}", link.dst, in_name, link.where))
            continue
        fed[(link.dst, in_name)] = link
        refused.append(LinkSpec(link.src, out_name, link.dst, in_name))
        if link.policy is not None and link.policy not in POLICIES:
            issues.append(Issue("bad_link", f"policy {link.policy!r} is not one of {POLICIES}", link.dst, in_name,
                                link.where))
            continue
        capacity = link.capacity
        if capacity is not None and (isinstance(capacity, bool) or not isinstance(capacity, int)
                                     or not 1 <= capacity <= MAX_CAPACITY):
            issues.append(Issue("bad_link", f"capacity {capacity!r} must be an integer in [1, {MAX_CAPACITY}]",
                                link.dst, in_name, link.where))
            continue
        if link.route is not None and not isinstance(link.route, str):
            issues.append(Issue("bad_link", "route must be a string (a source name)", link.dst, in_name, link.where))
            continue
        refused.pop()
        valid.append(LinkSpec(link.src, out_name, link.dst, in_name, link.capacity, link.policy, link.route,
                              link.where, link.stream))
    return valid


def _reads(port: Input, out_type: str, registry: NodeRegistry) -> bool:
    """Whether input ``port`` lists ``out_type`` (or a type of the same name) among the types it reads."""
    name = registry.types.get(out_type).name
    return any(registry.types.get(listed).name == name for listed in port.reads)


def _duplicate_links(links: list[LinkSpec]) -> list[Issue]:
    """The same output linked twice to the same input would deliver every message twice, on two channels of one
    name: refused."""
    seen: set[str] = set()
    issues = []
    for link in links:
        if str(link) in seen:
            issues.append(Issue("duplicate_link", f"{link} is written more than once", link.dst, link.dst_port,
                                link.where))
        seen.add(str(link))
    return issues


def _links_from_unknown_types(graph: Graph, classes: dict[str, type[Node]]) -> list[LinkSpec]:
    """Links out of nodes of unknown type: the type is reported once, the inputs they feed are not missing."""
    links = []
    for link in graph.links:
        if link.src in graph.nodes and link.src not in classes and link.dst in classes:
            name = canonical_name(classes[link.dst].input_ports, link.dst_port)
            if name is not None:
                links.append(LinkSpec(link.src, link.src_port, link.dst, name))
    return links


def _check_required_inputs(graph: Graph, classes: dict[str, type[Node]], links: list[LinkSpec],
                           issues: list[Issue]) -> None:
    fed = {(link.dst, link.dst_port) for link in links}
    for node_id, cls in classes.items():
        for name, port in cls.input_ports.items():
            if not port.optional and (node_id, name) not in fed:
                issues.append(Issue("missing_required_input", f"required input {name!r} ({port.type}) has no link",
                                    node_id, name, graph.nodes[node_id].where))


def _check_unused_outputs(graph: Graph, classes: dict[str, type[Node]], links: list[LinkSpec],
                          issues: list[Issue]) -> None:
    used = {(link.src, link.src_port) for link in links}
    for node_id, cls in classes.items():
        for name in cls.output_ports:
            if (node_id, name) not in used:
                issues.append(Issue("unused_output", f"output {name!r} is not linked", node_id, name,
                                    graph.nodes[node_id].where, severity="warning"))


def _check_loops(graph: Graph, classes: dict[str, type[Node]], links: list[LinkSpec], issues: list[Issue]) -> None:
    """Every feedback loop needs a primed input, a window input (its first firing takes an empty window) or a merge
    node fed from outside the loop. A reply link starts the loop it closes (its answerer replies first, at its
    start), so loops are sought without reply links."""
    edges: dict[str, set[str]] = {node_id: set() for node_id in graph.nodes}
    for link in links:
        if link.dst not in classes or classes[link.dst].input_ports[link.dst_port].reply_to is None:
            edges[link.src].add(link.dst)
    for component in strongly_connected(edges):
        if len(component) == 1:
            (only,) = component
            if only not in edges[only]:
                continue
        started = False
        for link in links:
            if link.dst not in component or link.dst not in classes:
                continue
            port = classes[link.dst].input_ports[link.dst_port]
            if link.src in component and (port.primed or isinstance(port.rule, Window)):
                started = True
            if link.src not in component and classes[link.dst].merge:
                started = True
        if not started:
            names = ", ".join(sorted(component))
            issues.append(Issue(
                "unstarted_loop",
                f"the loop through nodes {names} has nothing to start it: add a primed input (a step node's "
                "trigger) or feed a merge node (ORNode) in the loop from outside it",
                sorted(component)[0], where=graph.nodes[sorted(component)[0]].where,
            ))


def _check_offsets(classes: dict[str, type[Node]], links: list[LinkSpec], registry: NodeRegistry,
                   issues: list[Issue]) -> None:
    """Port offsets checked statically: the inputs a node joins must hold messages of one stamp.

    A node that stamps as declared (its firing's stamp plus each output's offset: every node that does not run its
    own loop, and those that say ``stamps_as_declared``) passes on the stamp of what it took, shifted. Following
    those shifts from each origin (a node that stamps on its own: a source, a merge node, a node with its own loop,
    a node with firing rules, whose stamps count in units of its rules' sizes)
    gives every link's stamp as "origin + shift"; two inputs of one join fed from the same origin at shifts that
    differ once their offsets are taken off could never fire together (an ``AlignmentError`` mid-run, blamed on the
    joining node). Links that close a loop (primed or reply inputs) join messages of different rounds and are not
    compared; links from different origins cannot be compared statically.
    """
    def stamps_as_declared(cls: type[Node]) -> bool:
        ruled = any(port.rule is not None for port in cls.input_ports.values())
        return not cls.merge and not ruled and bool(getattr(cls, "stamps_as_declared", cls.run is Node.run))

    def joined(link: LinkSpec) -> bool:
        port = classes[link.dst].input_ports[link.dst_port]
        config = port.config if port.config is not None else registry.types.get(port.type).config
        return not config and not port.closes_loop

    feeding: dict[str, list[LinkSpec]] = {node_id: [] for node_id in classes}
    for link in links:
        if link.src in classes and link.dst in classes and joined(link):
            feeding[link.dst].append(link)
    firing: dict[str, tuple[str, int]] = {}
    pending = [node_id for node_id, cls in classes.items() if not stamps_as_declared(cls) or not feeding[node_id]]
    for node_id in pending:
        firing[node_id] = (node_id, 0)
    waiting = {node_id: len({link.src for link in feeding[node_id]}) for node_id in classes if node_id not in firing}
    consumers: dict[str, set[str]] = {}
    for node_id, fed in feeding.items():
        for link in fed:
            consumers.setdefault(link.src, set()).add(node_id)
    while pending:
        done = pending.pop()
        for node_id in sorted(consumers.get(done, ())):
            if node_id not in waiting:
                continue
            waiting[node_id] -= 1
            if waiting[node_id]:
                continue
            del waiting[node_id]
            firing[node_id] = _joined_stamp(node_id, classes, feeding[node_id], firing, issues)
            pending.append(node_id)


def _joined_stamp(node_id: str, classes: dict[str, type[Node]], fed: list[LinkSpec],
                  firing: dict[str, tuple[str, int]], issues: list[Issue]) -> tuple[str, int]:
    """The stamp a node fires at, as (origin, shift), from the links it joins; a link out of step is an issue."""
    seen: dict[str, tuple[int, LinkSpec]] = {}
    for link in fed:
        origin, shift = firing[link.src]
        shift += classes[link.src].output_ports[link.src_port].offset
        shift -= classes[node_id].input_ports[link.dst_port].offset
        if origin not in seen:
            seen[origin] = (shift, link)
            continue
        first_shift, first = seen[origin]
        if shift != first_shift:
            issues.append(Issue(
                "offset_mismatch",
                f"the link {link} brings messages {_steps(shift - first_shift)} those of {first} (both stamped from "
                f"{origin!r}, after the port offsets): {node_id!r} could never join them; a port offset is missing "
                "or wrong on the way (a node that takes a step's outputs and sends on must declare offset=1 on the "
                "input and the output, or on neither)", node_id, link.dst_port, link.where))
    origin = next(iter(seen))
    return origin, seen[origin][0]


def _steps(difference: int) -> str:
    count = abs(difference)
    return f"{count} step{'s' if count != 1 else ''} {'ahead of' if difference > 0 else 'behind'}"


def strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit on large graphs)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[set[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


def _check_run(graph: Graph, registry: NodeRegistry, issues: list[Issue]) -> None:
    known = registry.vocabulary.run_keys
    for key, value in graph.run.items():
        where = graph.run_place(key)
        if key not in known:
            issues.append(Issue("bad_run_option", f"unknown run key {key!r}{did_you_mean(key, known)} "
                                f"(keys: {', '.join(known)})", field=key, where=where))
            continue
        if value is None and key not in ("seed", "device", "mode"):
            continue
        problem = _run_value_problem(key, value, known[key].check)
        if problem:
            code = "non_finite_value" if "finite" in problem else "bad_run_option"
            issues.append(Issue(code, f"run.{key}: {problem}", field=key, where=where))


def _run_value_problem(key: str, value: Any, check: Any) -> str | None:
    if key == "seed":
        ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63
        return None if ok else f"{value!r} must be an integer in [0, 2^63)"
    if key == "device":
        return device_problem(value)
    return check(value) if check is not None else None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the known name closest to a misspelt ``name``, else ``""``."""
    near = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.6)
    return f"; did you mean {near[0]!r}?" if near else ""


def device_problem(value: Any) -> str | None:
    """Why ``value`` is not a device the runtime can run on (``cpu``, ``cuda``, ``cuda:N``, ``mps``); else ``None``."""
    if isinstance(value, str) and (value in ("cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d{1,4}", value)):
        return None
    return f"device {value!r} must be 'cpu', 'cuda', 'cuda:N' (N a GPU index) or 'mps'"


def _check_placement(graph: Graph, classes: dict[str, type[Node]], links: list[LinkSpec], registry: NodeRegistry,
                     issues: list[Issue]) -> None:
    from .placement.interpreters import check_worker_options

    issues.extend(check_worker_options(graph))
    for node_id, worker in graph.placement.items():
        if node_id not in graph.nodes:
            issues.append(Issue("unknown_node", f"placement names node {node_id!r}, which is not in the graph"
                                f"{did_you_mean(node_id, graph.nodes)}", node_id, where=f"/placement/{node_id}"))
        elif graph.workers and worker not in graph.workers:
            issues.append(Issue("bad_placement", f"worker {worker!r} is not declared under 'workers'"
                                f"{did_you_mean(worker, graph.workers)}", node_id, where=f"/placement/{node_id}"))
    for link in links:
        if graph.placement.get(link.src) == graph.placement.get(link.dst):
            continue
        out_type = registry.types.get(classes[link.src].output_ports[link.src_port].type)
        if not out_type.crosses_processes:
            issues.append(Issue("link_crosses_process", f"{link} carries {out_type.name}, which cannot cross a "
                                "process boundary: place both nodes in the same process", link.dst, link.dst_port,
                                link.where))
