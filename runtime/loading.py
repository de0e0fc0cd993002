"""``load_graph``: any supported file or dict to a validated ``Graph``, with ``--set`` overrides applied."""
from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import heap
from .errors import GraphError, Issue
from .graph import Graph
from .loaders.comfy import load_api_prompt, load_workflow
from .loaders.document import check_depth, detect_format, parse_value, read_document
from .loaders.native import load_native
from .node import canonical_name
from .registry import NodeRegistry, default_registry
from .validate import did_you_mean, validate


def load_graph(
    source: str | Path | Mapping[str, Any] | Graph,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    registry: NodeRegistry | None = None,
    run: Mapping[str, Any] | None = None,
    allowed_modules: Collection[str] = (),
    drop_run: Collection[str] = (),
    settings: Mapping[str, Any] | None = None,
) -> Graph:
    """Load, override and validate a graph.

    Args:
        source: a path to a graph file (native, DNNE/ComfyUI workflow or API prompt), a parsed document, or a
            ``Graph`` built in code.
        overrides: ``"ID.param=VALUE"`` / ``"run.KEY=VALUE"`` strings, or a mapping of the same keys to values.
        registry: the node types to resolve against (default: every installed node package).
        run: run-section values that win over overrides and the file (the CLI's ``--seed``, ``--max-steps``...).
        allowed_modules: modules a node may import because the user named them (``--allow-env-module``); a
            graph file can never add to them.
        drop_run: run keys removed from the file's (and the overrides') run section before ``run`` applies, so
            a command's own settings replace them (an evaluation's stop conditions replace the training's).
        settings: the run section the nodes will read when it is not the graph's own (a worker's part of a split
            graph: its run section drops the stop conditions, its nodes see the whole graph's); checks of params
            against the run (a schedule that needs a run length) read it.

    Returns:
        The validated graph; its ``warnings`` attribute lists the warnings found.

    Raises:
        GraphError: with every error found, when the graph cannot run.
    """
    registry = registry or default_registry()
    path = None
    issues: list[Issue] = []
    if isinstance(source, Graph):
        graph = source.copy()
    else:
        if isinstance(source, (str, Path)):
            path = str(source)
            document = read_document(source)
        else:
            document = dict(source) if isinstance(source, Mapping) else source
            check_depth(document)
        graph = parse(document, registry, issues, path)
    graph.path = path or graph.path
    graph.allowed_modules = frozenset(allowed_modules) | graph.allowed_modules
    apply_overrides(graph, overrides, registry, issues)
    for key in drop_run:
        graph.run.pop(key, None)
    for key, value in (run or {}).items():
        if value is not None:
            graph.run[key] = value
            graph.run_where[key] = "the command line"
    expand_run_keys(graph, registry, issues)
    readable = not any(issue.code == "bad_run_option" and issue.where == "/run" for issue in issues)
    issues.extend(validate(graph, registry, dict(settings) if settings is not None else None, readable))
    if any(issue.severity == "error" for issue in issues):
        raise GraphError(issues, path)
    graph.warnings = [issue for issue in issues if issue.severity == "warning"]
    heap.settle()  # a loaded graph ends a deferring process's start-up: its imports are done, no run exists yet
    return graph


def expand_run_keys(graph: Graph, registry: NodeRegistry, issues: list[Issue]) -> None:
    """Replace each run key that stands for nodes (``RunKey.expand``) by the nodes it stands for: the key leaves the
    run section (the resolved graph holds the nodes, so a resumed run does not add them twice) after its value
    passed its check; a ``null`` value adds nothing."""
    for name, key in registry.vocabulary.run_keys.items():
        if key.expand is None or name not in graph.run:
            continue
        where = graph.run_place(name)
        value = graph.run.pop(name)
        graph.run_where.pop(name, None)
        if value is None:
            continue
        problem = key.check(value) if key.check is not None else None
        if problem is not None:
            issues.append(Issue("bad_run_option", f"run.{name}: {problem}", field=name, where=where))
            continue
        issues.extend(key.expand(graph, value, where, registry))


def parse(document: Any, registry: NodeRegistry, issues: list[Issue], path: str | None = None) -> Graph:
    """Turn a parsed document of any supported format into a ``Graph`` (not validated)."""
    kind = detect_format(document)
    if kind == "native":
        return load_native(document, issues, path)
    if kind == "workflow":
        return load_workflow(document, registry, issues)
    if kind == "api":
        return load_api_prompt(document, registry, issues)
    raise GraphError([Issue("unknown_format", "not a graph file: expected a native dnne-graph document, a "
                            "DNNE/ComfyUI workflow or a ComfyUI API prompt")], path)


def parse_override(text: str) -> tuple[str, str, Any]:
    """Split ``"ID.param=VALUE"`` into id, param and value (JSON when it parses, else the string)."""
    key, eq, raw = text.partition("=")
    target, dot, name = key.strip().rpartition(".")
    if not eq or not dot or not target or not name:
        raise ValueError(f"--set {text[:200]!r}: expected ID.param=VALUE or run.KEY=VALUE")
    try:
        # a node param sits at /nodes/ID/params/NAME, a run value at /run/KEY
        value = parse_value(raw, depth=2 if target == "run" else 4)
    except ValueError as error:
        raise ValueError(f"--set {key.strip()[:200]!r}: {error}") from None
    return target, name, value


def apply_overrides(graph: Graph, overrides: Sequence[str] | Mapping[str, Any], registry: NodeRegistry,
                    issues: list[Issue]) -> None:
    """Apply ``--set`` overrides to ``graph``; unknown targets become issues located at ``--set``."""
    items: list[tuple[str, str, Any]] = []
    if isinstance(overrides, Mapping):
        for key, value in overrides.items():
            target, _, name = key.rpartition(".")
            items.append((target, name, value))
    else:
        for text in overrides:
            try:
                items.append(parse_override(text))
            except ValueError as error:
                issues.append(Issue("bad_override", str(error), where="--set"))
    for target, name, value in items:
        where = f"--set {target}.{name}"
        if target == "run":
            graph.run[name] = value
            graph.run_where[name] = where
            continue
        spec = graph.nodes.get(target)
        if spec is None:
            issues.append(Issue("unknown_node", f"--set names node {target!r}, which is not in the graph"
                                f"{did_you_mean(target, graph.nodes)} (nodes: {', '.join(graph.nodes)})", target, name,
                                where))
            continue
        cls = registry.get(spec.type)
        canonical = canonical_name(cls.param_specs, name) if cls is not None else name
        if cls is not None and canonical is None:
            issues.append(Issue("unknown_param", f"{spec.type} has no param {name!r}"
                                f"{did_you_mean(name, cls.param_specs)}", target, name, where))
            continue
        for written in list(spec.params):
            if cls is not None and canonical_name(cls.param_specs, written) == canonical:
                del spec.params[written]
        spec.params[canonical or name] = value
        spec.param_where[canonical or name] = where
