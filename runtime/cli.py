"""The ``dnne`` command line: run, validate, nodes, convert, graph, play, plot, export."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .checkpoint import CheckpointError
from .errors import GraphError, Issue
from .graph import Graph
from .loading import load_graph
from .registry import NodeRegistry, default_registry

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
log = logging.getLogger("dnne")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dnne`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(message)s", stream=sys.stderr)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return int(args.handler(args))
    except GraphError as error:
        _print_issues(error)
        return EXIT_BAD_INPUT
    except (CheckpointError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="dnne", description="Run RL training graphs (DNNE-compatible).")
    parser.add_argument("--version", action="version", version=f"dnne-runtime {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import MODULE and register its nodes (repeatable)")
    common.add_argument("-v", "--verbose", action="store_true", help="more output")
    common.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    graph_args = argparse.ArgumentParser(add_help=False, parents=[common])
    graph_args.add_argument("file", nargs="?", help="graph file: native, DNNE/ComfyUI workflow or ComfyUI API "
                            "prompt")
    graph_args.add_argument("--set", action="append", default=[], metavar="ID.PARAM=VALUE", dest="overrides",
                            help="override a node param or run.KEY (VALUE parsed as JSON, else a string)")
    graph_args.add_argument("--worker-python", action="append", default=[], metavar="ALIAS=PATH",
                            help="allow a split graph's workers.NAME.python alias to run under PATH (repeatable)")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", parents=[graph_args], help="train (or play) a graph")
    run.add_argument("--max-steps", type=int, help="stop at this many env steps (summed over envs)")
    run.add_argument("--timeout", help="stop after this wall time: 30s, 5m, 1h30m")
    run.add_argument("--seed", type=int, help="run seed")
    run.add_argument("--device", choices=("cpu", "cuda"), help="default device")
    run.add_argument("--run-dir", "--save-checkpoint-dir", dest="run_dir", help="where the run writes")
    run.add_argument("--resume", "--load-checkpoint-dir", dest="resume", metavar="RUN_DIR",
                     help="continue the run in RUN_DIR from its latest checkpoint")
    run.add_argument("--inference", action="store_true", help="DNNE's flag: play the graph (no training)")
    run.add_argument("--headless", action="store_true", help="DNNE's flag: accepted; runs are headless")
    run.add_argument("--threads", type=_at_least(1), default=1, help="torch threads (default 1)")
    run.add_argument("--checkpoint-every", type=_at_least(0), help="save a checkpoint every N iterations")
    run.add_argument("--no-uvloop", action="store_true", help="use asyncio's own event loop")
    run.set_defaults(handler=cmd_run)

    validate = sub.add_parser("validate", parents=[graph_args], help="check a graph file, print every error")
    validate.set_defaults(handler=cmd_validate)

    nodes = sub.add_parser("nodes", parents=[common], help="list node types with ports, params and docs")
    nodes.add_argument("type", nargs="?", help="one node type")
    nodes.add_argument("--json", action="store_true", help="machine-readable output")
    nodes.set_defaults(handler=cmd_nodes)

    convert = sub.add_parser("convert", parents=[graph_args], help="write a graph in the native format")
    convert.add_argument("-o", "--output", help="output file (default: stdout)")
    convert.set_defaults(handler=cmd_convert)

    draw = sub.add_parser("graph", parents=[graph_args], help="the graph as Mermaid or Graphviz DOT text")
    draw.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    draw.add_argument("-o", "--output", help="write to a file; a .png path renders with Graphviz's dot")
    draw.set_defaults(handler=cmd_graph)

    from .tools import add_tool_commands

    add_tool_commands(sub, graph_args, common)
    return parser


def registry_for(args: argparse.Namespace) -> NodeRegistry:
    """The node registry with installed packages and ``--plugin`` modules; a named plugin that fails is bad input."""
    registry = default_registry(args.plugin)
    failed = [error for error in registry.plugin_errors if error.startswith("plugin module")]
    if failed:
        raise ValueError("; ".join(failed))
    return registry


def _at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is less than {low}")
        return value

    return parse


def load_from_args(args: argparse.Namespace, registry: NodeRegistry, run: dict[str, Any] | None = None) -> Graph:
    """Load and validate the graph named on the command line, printing its warnings."""
    if not args.file:
        raise GraphError([Issue("missing_file", f"dnne {args.command} needs a graph FILE")])
    graph = load_graph(args.file, args.overrides, registry, run)
    if graph.workers:
        from .placement.interpreters import allowed_interpreters, worker_interpreters

        worker_interpreters(graph, allowed_interpreters(args.worker_python))
    for issue in graph.warnings:
        if issue.code != "unused_output" or getattr(args, "verbose", False):
            log.warning("%s", issue)
    return graph


def cmd_validate(args: argparse.Namespace) -> int:
    """``dnne validate``."""
    graph = load_from_args(args, registry_for(args))
    print(f"{args.file}: valid ({len(graph.nodes)} nodes, {len(graph.links)} links)")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """``dnne run``: load, run with a run directory, progress and signal handling; exit code by outcome."""
    from .execution import execute_cli_run

    return execute_cli_run(args, registry_for(args))


def cmd_nodes(args: argparse.Namespace) -> int:
    """``dnne nodes [TYPE]``."""
    registry = registry_for(args)
    names = [args.type] if args.type else sorted(registry.nodes)
    described = []
    for name in names:
        cls = registry.get(name)
        if cls is None:
            print(f"error: unknown node type {name!r} (known: {', '.join(sorted(registry.nodes))})", file=sys.stderr)
            return EXIT_BAD_INPUT
        described.append(cls.describe() | {"source": registry.sources[name]})
    if args.json:
        print(json.dumps(described, indent=2, default=str))
        return EXIT_OK
    for info in described:
        print(_format_node(info, registry))
    return EXIT_OK


def _format_node(info: dict[str, Any], registry: NodeRegistry) -> str:
    lines = [f"{info['type']}  [{info['category']}]  ({info['source']})", f"    {info['doc']}"]
    for title, key in (("inputs", "inputs"), ("outputs", "outputs")):
        if info[key]:
            lines.append(f"  {title}:")
            for name, port in info[key].items():
                flags = [f for f, on in (("optional", port.get("optional")), ("fan-in", port.get("fan_in")),
                                          (f"primed {port.get('primed')}", port.get("primed"))) if on]
                alias = f" (also {', '.join(port['aliases'])})" if port["aliases"] else ""
                extra = f" [{', '.join(flags)}]" if flags else ""
                lines.append(f"    {name}: {port['type']}{extra}{alias} - {port['doc']}")
    if info["params"]:
        lines.append("  params:")
        for name, param in info["params"].items():
            default = "required" if param["required"] else f"default {json.dumps(param['default'])}"
            bounds = f" in {param['bounds']}" if param["bounds"] else ""
            choices = f" one of {param['choices']}" if param["choices"] else ""
            alias = f" (also {', '.join(param['aliases'])})" if param["aliases"] else ""
            lines.append(f"    {name}: {param['type']}, {default}{bounds}{choices}{alias} - {param['doc']}")
    return "\n".join(lines) + "\n"


def cmd_convert(args: argparse.Namespace) -> int:
    """``dnne convert``: the graph in the native format."""
    graph = load_from_args(args, registry_for(args))
    text = json.dumps(graph.to_native(), indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    """``dnne graph``: Mermaid or DOT text, or a PNG through Graphviz."""
    import shutil
    import subprocess

    graph = load_from_args(args, registry_for(args))
    png = bool(args.output) and args.output.endswith(".png")
    text = to_dot(graph) if args.format == "dot" or png else to_mermaid(graph)
    if png:
        dot = shutil.which("dot")
        if dot is None:
            print("error: writing PNG needs Graphviz's 'dot' on PATH; use --format dot or mermaid for text",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
        subprocess.run([dot, "-Tpng", "-o", args.output], input=text.encode(), check=True)
    elif args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def to_mermaid(graph: Graph) -> str:
    """The graph as a Mermaid flowchart."""
    ids = {node_id: f"n{i}" for i, node_id in enumerate(graph.nodes)}
    lines = ["flowchart LR"]
    lines += [f'    {ids[n]}["{_label(n)}: {spec.type}"]' for n, spec in graph.nodes.items()]
    lines += [f"    {ids[l.src]} -->|{l.src_port} → {l.dst_port}| {ids[l.dst]}" for l in graph.links]
    return "\n".join(lines) + "\n"


def to_dot(graph: Graph) -> str:
    """The graph as Graphviz DOT."""
    lines = ["digraph dnne {", "    rankdir=LR;", "    node [shape=box];"]
    lines += [f'    "{_label(n)}" [label="{_label(n)}\\n{spec.type}"];' for n, spec in graph.nodes.items()]
    lines += [f'    "{_label(l.src)}" -> "{_label(l.dst)}" [label="{l.src_port} → {l.dst_port}"];'
              for l in graph.links]
    return "\n".join(lines + ["}"]) + "\n"


def _label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _print_issues(error: GraphError) -> None:
    errors = error.errors
    head = f"{error.path}: " if error.path else ""
    print(f"{head}{len(errors)} error(s)", file=sys.stderr)
    for issue in errors:
        print(f"  {issue}", file=sys.stderr)


def install_signal_handlers(loop: asyncio.AbstractEventLoop, graceful: Callable[[], None],
                            abort: Callable[[], None]) -> None:
    """First SIGINT/SIGTERM: ``graceful``; a second: ``abort``. Installed on the loop, so they also work for a
    run started in the background by a script, where SIGINT arrives ignored."""
    received = {"count": 0}

    def handler(signum: int) -> None:
        received["count"] += 1
        if received["count"] == 1:
            print(f"\n{signal.Signals(signum).name}: stopping gracefully (again to abort)", file=sys.stderr,
                  flush=True)
            graceful()
        else:
            abort()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, handler, signum)


def timestamp() -> str:
    """A sortable local timestamp for run directory names."""
    return time.strftime("%Y%m%d-%H%M%S")


if __name__ == "__main__":
    sys.exit(main())
