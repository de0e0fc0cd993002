"""What every subcommand shares: exit codes, the registry, loading the graph file, signals, the event loop."""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from ..errors import GraphError, Issue, printable
from ..graph import Graph
from ..loading import load_graph
from ..registry import NodeRegistry, default_registry

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
log = logging.getLogger("dnne")


def registry_for(args: argparse.Namespace) -> NodeRegistry:
    """The node registry with installed packages and ``--plugin`` modules; a named plugin that fails is bad input."""
    registry = default_registry(args.plugin)
    failed = [error for error in registry.plugin_errors if error.startswith("plugin module")]
    if failed:
        raise ValueError("; ".join(failed))
    return registry


def at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer no smaller than ``low``."""

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
    graph = load_graph(args.file, args.overrides, registry, run, getattr(args, "allowed_modules", ()))
    for issue in graph.warnings:
        if issue.code != "unused_output" or getattr(args, "verbose", False):
            log.warning("%s", issue)
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
