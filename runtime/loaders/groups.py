"""Subgraphs: a group of nodes and links defined once and instantiated with parameters (native format).

A native document may hold ``"groups"``: name -> template, or name -> ``{"file": "PATH"}`` naming a JSON file
that holds the template. A template is::

    {"params": {"size": 4, "learner": null},         # parameters and their defaults (null: required)
     "ids": "{node}{instance}",                       # how its node ids expand (default "{instance}.{node}")
     "nodes": {"env": {"type": "Source", "params": {"size": "$size"}}, ...},
     "links": [["env.out", "$learner.x"], ...]}

and a node ``{"group": NAME, "params": {...}}`` of the document's ``nodes`` is an instance: it is replaced by the
template's nodes, their ids expanded with the instance's id, and the template's links. In node bodies a string
``"$p"`` (at any depth: a param value, the whole ``params`` object, the type) is the value of parameter ``p``; a
link end ``"$p.port"`` is port ``port`` of the outside node whose id parameter ``p`` holds, a link end ``"$p"`` the
outside port ``node.port`` that parameter ``p`` holds; any other end names a node of the template. A group used
once may keep its nodes' names (``"ids": "{node}"``); a second instance of it then collides (duplicate_node_id). A link's ``route`` and ``stream``
name template nodes or streams and expand like node ids. Errors name the instance and the template.

Group files are data: JSON only, read with the graph file's limits, relative to the graph file's folder and never
outside it (no absolute paths, no ``..``, no links leading out), at most ``MAX_GROUP_FILES`` of them, and a group
file cannot name further files. Nothing in them is imported or run.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import GraphError, Issue
from .document import read_document

MAX_GROUP_FILES = 16
MAX_INSTANCES = 1000
DEFAULT_IDS = "{instance}.{node}"
_TEMPLATE_KEYS = {"params", "ids", "nodes", "links", "description"}
_PARAM = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class Origins:
    """Where expanded nodes and links come from: their place in the template and the instance, for messages.

    Args:
        nodes: expanded node id -> (``/groups/NAME/nodes/NODE``, `` (instance 'ID', /nodes/ID)``).
        links: index in the expanded ``links`` -> ``/groups/NAME/links/I (instance 'ID', /nodes/ID)``.
    """

    nodes: dict[str, tuple[str, str]] = field(default_factory=dict)
    links: dict[int, str] = field(default_factory=dict)


def expand_groups(document: dict[str, Any], issues: list[Issue], path: str | None) -> tuple[dict[str, Any], Origins]:
    """The document with every group instance replaced by its nodes and links (``groups`` removed), and where
    they come from; issues in ``issues``. A document without ``groups`` is returned as it is."""
    origins = Origins()
    if "groups" not in document:
        return document, origins
    templates = _templates(document["groups"], issues, path)
    refused = set(document["groups"]) - set(templates) if isinstance(document["groups"], dict) else set()
    nodes = document.get("nodes", {})
    links = document.get("links", [])
    if not isinstance(nodes, dict) or not isinstance(links, list):
        return {k: v for k, v in document.items() if k != "groups"}, origins
    flat_nodes: dict[str, Any] = {}
    flat_links: list[Any] = list(links)
    instances = 0
    for node_id, body in nodes.items():
        if not (isinstance(body, dict) and "group" in body):
            flat_nodes[node_id] = body
            continue
        instances += 1
        if instances > MAX_INSTANCES:
            issues.append(Issue("bad_group", f"more than {MAX_INSTANCES} group instances", node_id,
                                where=f"/nodes/{node_id}"))
            break
        if body.get("group") in refused:  # its template's error is reported once, at the template
            continue
        expanded = _instantiate(node_id, body, templates, issues)
        if expanded is None:
            continue
        in_instance = f" (instance {node_id!r}, /nodes/{node_id})"
        for new_id, new_body in expanded[0].items():
            if new_id in nodes or new_id in flat_nodes:
                issues.append(Issue("duplicate_node_id", f"group instance {node_id!r} (group {body['group']!r}) "
                                    f"expands to node {new_id!r}, which already exists", node_id,
                                    where=f"/nodes/{node_id}"))
                continue
            flat_nodes[new_id] = new_body
            origins.nodes[new_id] = (f"/groups/{body['group']}/nodes/{expanded[2][new_id]}", in_instance)
        for index, link in expanded[1]:
            origins.links[len(flat_links)] = f"/groups/{body['group']}/links/{index}{in_instance}"
            flat_links.append(link)
    flat = {k: v for k, v in document.items() if k != "groups"}
    flat["nodes"], flat["links"] = flat_nodes, flat_links
    return flat, origins


def _templates(groups: Any, issues: list[Issue], path: str | None) -> dict[str, dict[str, Any]]:
    if not isinstance(groups, dict):
        issues.append(Issue("bad_group", "'groups' must be an object of group name -> template", where="/groups"))
        return {}
    templates: dict[str, dict[str, Any]] = {}
    files = 0
    for name, template in groups.items():
        where = f"/groups/{name}"
        if isinstance(template, dict) and set(template) == {"file"}:
            files += 1
            if files > MAX_GROUP_FILES:
                issues.append(Issue("bad_group", f"more than {MAX_GROUP_FILES} group files", where=where))
                continue
            template = _read_group_file(template["file"], path, issues, where)
            if template is None:
                continue
        problem = _template_problem(template)
        if problem:
            issues.append(Issue("bad_group", f"group {name!r}: {problem}", where=where))
            continue
        templates[name] = template
    return templates


def _read_group_file(name: Any, path: str | None, issues: list[Issue], where: str) -> dict[str, Any] | None:
    if path is None:
        issues.append(Issue("bad_group", "a group file can only be named by a graph loaded from a file", where=where))
        return None
    if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts \
            or "\\" in name or "\x00" in name:
        issues.append(Issue("bad_group", f"group file {name!r} must be a relative path inside the graph file's "
                            "folder (no absolute path, no '..')", where=f"{where}/file"))
        return None
    base = Path(path).resolve().parent
    target = (base / name).resolve()
    if not target.is_relative_to(base):
        issues.append(Issue("bad_group", f"group file {name!r} leads outside the graph file's folder",
                            where=f"{where}/file"))
        return None
    try:
        template = read_document(target)
    except GraphError as error:
        for issue in error.errors:
            issues.append(Issue(issue.code, f"group file {name!r}: {issue.message}", where=f"{where}/file"))
        return None
    if isinstance(template, dict) and "file" in template:
        issues.append(Issue("bad_group", f"group file {name!r} names another file; group files do not nest",
                            where=f"{where}/file"))
        return None
    return template


def _template_problem(template: Any) -> str | None:
    if not isinstance(template, dict):
        return "a template is an object with 'nodes' (and 'params', 'ids', 'links') or {\"file\": PATH}"
    unknown = set(template) - _TEMPLATE_KEYS
    if unknown:
        return f"unknown template key(s) {', '.join(sorted(map(str, unknown)))}"
    if not isinstance(template.get("nodes"), dict) or not template["nodes"]:
        return "'nodes' must be a non-empty object"
    if any(isinstance(body, dict) and "group" in body for body in template["nodes"].values()):
        return "a template's nodes cannot be group instances (groups do not nest)"
    if not isinstance(template.get("links", []), list):
        return "'links' must be a list"
    params = template.get("params", {})
    if not isinstance(params, dict) or not all(isinstance(k, str) and _NAME.match(k) for k in params):
        return "'params' must map parameter names (letters, digits, _) to default values"
    ids = template.get("ids", DEFAULT_IDS)
    if not isinstance(ids, str) or "{node}" not in ids:
        return "'ids' must be a pattern holding {node} (and {instance}, unless the group is used once)"
    try:
        ids.format(node="n", instance="i")
    except (KeyError, IndexError, ValueError):
        return "'ids' may hold only {node} and {instance}"
    return None


def _instantiate(instance: str, body: dict[str, Any], templates: dict[str, dict[str, Any]],
                 issues: list[Issue]) -> tuple[dict[str, Any], list[tuple[int, Any]], dict[str, str]] | None:
    where = f"/nodes/{instance}"
    name = body.get("group")
    if not isinstance(name, str) or name not in templates:
        known = ", ".join(sorted(templates)) or "none"
        issues.append(Issue("unknown_group", f"instance {instance!r} names group {name!r}, which is not defined "
                            f"(groups: {known})", instance, where=f"{where}/group"))
        return None
    template = templates[name]
    label = f"instance {instance!r} of group {name!r}"
    unknown = set(body) - {"group", "params", "title"}
    given = body.get("params", {})
    if unknown or not isinstance(given, dict):
        issues.append(Issue("bad_group", f"{label}: an instance is {{\"group\": NAME, \"params\": {{...}}}}", instance,
                            where=where))
        return None
    declared = template.get("params", {})
    undeclared = set(given) - set(declared)
    if undeclared:
        issues.append(Issue("bad_group", f"{label}: unknown parameter(s) {', '.join(sorted(undeclared))} (parameters: "
                            f"{', '.join(declared) or 'none'})", instance, where=f"{where}/params"))
        return None
    values = {key: given.get(key, default) for key, default in declared.items()}
    missing = [key for key, value in values.items() if value is None]
    if missing:
        issues.append(Issue("bad_group", f"{label}: parameter(s) {', '.join(missing)} must be given", instance,
                            where=f"{where}/params"))
        return None
    ids = template.get("ids", DEFAULT_IDS)
    local = set(template["nodes"])

    def expand_id(node: str) -> str:
        return ids.format(node=node, instance=instance)

    problems: list[str] = []
    nodes, names = {}, {}
    for node, node_body in template["nodes"].items():
        nodes[expand_id(node)] = _substitute(node_body, values, problems)
        names[expand_id(node)] = node
    links = []
    for index, link in enumerate(template.get("links", [])):
        expanded = _expand_link(link, local, values, expand_id, problems)
        if expanded is not None:
            links.append((index, expanded))
        elif problems:
            problems[-1] = f"link {index} of the template: {problems[-1]}"
    for problem in problems:
        issues.append(Issue("bad_group", f"{label}: {problem}", instance, where=f"/groups/{name}"))
    return (nodes, links, names) if not problems else None


def _substitute(value: Any, values: dict[str, Any], problems: list[str]) -> Any:
    if isinstance(value, str):
        match = _PARAM.match(value)
        if match is None:
            return value
        if match.group(1) not in values:
            problems.append(f"{value!r} names no parameter of the group")
            return value
        return values[match.group(1)]
    if isinstance(value, dict):
        return {key: _substitute(item, values, problems) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, values, problems) for item in value]
    return value


def _expand_link(link: Any, local: set[str], values: dict[str, Any], expand_id: Callable[[str], str],
                 problems: list[str]) -> Any:
    if isinstance(link, list) and len(link) == 2:
        ends, options = list(link), {}
    elif isinstance(link, dict) and "from" in link and "to" in link:
        ends, options = [link["from"], link["to"]], {k: v for k, v in link.items() if k not in ("from", "to")}
    else:
        problems.append('a link is ["node.output", "node.input"] or {"from": ..., "to": ...}')
        return None
    resolved = []
    for end in ends:
        whole = _PARAM.match(end) if isinstance(end, str) else None
        if whole is not None:
            outside = values.get(whole.group(1))
            if not isinstance(outside, str) or "." not in outside:
                problems.append(f"link end {end!r}: parameter {whole.group(1)!r} must hold a port, node.port")
                return None
            resolved.append(outside)
            continue
        if not isinstance(end, str) or "." not in end:
            problems.append(f"link end {end!r} is not of the form node.port, $param.port or $param")
            return None
        node, _, port = end.rpartition(".")
        match = _PARAM.match(node)
        if match is not None:
            outside = values.get(match.group(1))
            if not isinstance(outside, str):
                problems.append(f"link end {end!r}: parameter {match.group(1)!r} must hold a node id")
                return None
            resolved.append(f"{outside}.{port}")
        elif node in local:
            resolved.append(f"{expand_id(node)}.{port}")
        else:
            problems.append(f"link end {end!r} names neither a node of the group nor a $parameter")
            return None
    for key in ("route", "stream"):  # stream names are the instance's own, like its node ids; "$p" names another
        if isinstance(options.get(key), str):
            name = options[key]
            match = _PARAM.match(name)
            options[key] = values.get(match.group(1), name) if match else expand_id(name)
    return {"from": resolved[0], "to": resolved[1], **options} if options else resolved
