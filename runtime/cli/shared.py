"""What every subcommand shares: exit codes, the registry, loading the graph file, signals, the event loop."""
from __future__ import annotations

import argparse
import asyncio
import logging
import re
import signal
import sys
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from ..errors import GraphError, Issue, printable
from ..graph import Graph
from ..loading import load_graph
from ..registry import NodeRegistry, default_registry
from ..stopping import stop_keys

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
log = logging.getLogger("dnne")


def registry_for(args: argparse.Namespace) -> NodeRegistry:
    """The node registry with installed packages and ``--plugin`` modules; a named plugin that fails (or is not a
    module name, or ends the process while it loads) is bad input."""
    for name in args.plugin:
        if not _MODULE_NAME.fullmatch(name):
            hint = ""
            if name.endswith(".py"):
                path = Path(name)
                hint = (f": put its folder on the module path and name the module, e.g. PYTHONPATH={path.parent} "
                        f"dnne ... --plugin {path.stem}")
            raise ValueError(printable(f"--plugin {name!r} is not a module name (MODULE or package.module){hint}"))
    registry = default_registry()
    for name in args.plugin:
        try:
            registry.load_plugin(name)
        except SystemExit as exit_:
            raise ValueError(printable(f"plugin module {name!r} called sys.exit({exit_.code!r}) while loading; a "
                                       "plugin must only define nodes and register them")) from None
    failed = [error for error in registry.plugin_errors if error.startswith("plugin module")]
    if failed:
        raise ValueError("; ".join(failed))
    return registry


def at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer no smaller than ``low``."""

    def parse(text: str) -> int:
        if len(text.strip().lstrip("+-")) > 19:
            raise argparse.ArgumentTypeError(f"{text[:40]}... is too large")
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is less than {low}")
        if value > 2**63 - 1:
            raise argparse.ArgumentTypeError(f"{value} is too large")
        return value

    return parse


def load_from_args(args: argparse.Namespace, registry: NodeRegistry, run: dict[str, Any] | None = None,
                   drop_run: Collection[str] = ()) -> Graph:
    """Load and validate the graph named on the command line, printing its warnings (``load_graph`` says what
    ``run`` and ``drop_run`` do)."""
    if not args.file:
        raise GraphError([Issue("missing_file", f"dnne {args.command} needs a graph FILE")])
    graph = load_graph(args.file, args.overrides, registry, run, getattr(args, "allowed_modules", ()), drop_run)
    if graph.workers:
        from ..placement.interpreters import allowed_interpreters, worker_interpreters

        worker_interpreters(graph, allowed_interpreters(getattr(args, "worker_python", [])))
    for issue in graph.warnings:
        if issue.code != "unused_output" or getattr(args, "verbose", False):
            log.warning("%s", issue)
    stops = stop_keys(registry.vocabulary.shorthands)
    if args.command == "run" and graph.run.get("mode") != "play" and not any(
            graph.run.get(key) is not None for key in stops):
        log.warning("this run has no stop condition (%s): it runs until Ctrl-C; set one with --timeout or --set "
                    "run.KEY=VALUE", ", ".join(stops))
    return graph


def print_issues(error: GraphError) -> None:
    """Print a graph's errors, one per line, under a count."""
    errors = error.errors
    head = printable(f"{error.path}: ") if error.path else ""
    print(f"{head}{len(errors)} error(s)", file=sys.stderr)
    for issue in errors:
        print(f"  {issue}", file=sys.stderr)


class PrintableFormatter(logging.Formatter):
    """Log lines with control characters escaped: messages quote node ids and values from graph files."""

    def format(self, record: logging.LogRecord) -> str:
        """The formatted record, escaped with ``printable`` (line breaks kept)."""
        return printable(super().format(record), keep_newlines=True)


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


def loop_factory(disabled: bool) -> Any:
    """uvloop's loop factory when installed and not ``disabled``, else None (asyncio's own loop)."""
    if disabled:
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def timestamp() -> str:
    """A sortable local timestamp for run directory names."""
    return time.strftime("%Y%m%d-%H%M%S")
