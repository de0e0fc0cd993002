"""``dnne``: the parser of every subcommand and the entry point that maps outcomes to exit codes."""
from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from .. import __version__, heap
from ..checkpoint import CheckpointError
from ..errors import GraphError, printable
from ..run_owner import RunDirectoryError
from . import convert, draw, nodes, run, validate
from .extensions import CommandLine, load_extensions
from .shared import EXIT_BAD_INPUT, EXIT_INTERRUPTED, PrintableFormatter, print_issues


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dnne`` console script; returns the exit code."""
    # Ctrl-C or SIGTERM before the run's own handlers are in place (imports take a while) is a quiet exit 130,
    # also for a background job, which inherits SIGINT ignored.
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        for signum, handler in previous.items():  # main() called from Python leaves the caller's handlers as they were
            if handler is not None:
                signal.signal(signum, handler)


def console() -> int:
    """The ``dnne`` console script (and ``python -m dnne.runtime.cli``): ``main``, then an exit that skips the
    interpreter's last garbage collections over every object still alive, torch's modules first among them (about
    0.3 s of a Cartpole run's 5): ``gc.freeze`` moves them out of the collector's sight. Nothing is lost: the run
    has closed its files and ended its threads by then, and ``atexit`` handlers still run. Before ``main``, full
    collections are held back until a graph is loaded (``heap.py``). Neither is part of ``main``, which a
    caller's process goes on after."""
    heap.defer()
    try:
        code = main()
    finally:
        heap.settle()  # a command that ran no graph, or failed before one was built
    gc.freeze()
    return code


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter("%(levelname)s %(message)s"))
    verbose, quiet = getattr(args, "verbose", False), getattr(args, "quiet", False)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO,
                        handlers=[handler])
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return int(args.handler(args))
    except GraphError as error:
        print_issues(error)
        return EXIT_BAD_INPUT
    except (CheckpointError, RunDirectoryError, OSError, ValueError) as error:
        print(printable(f"error: {error}", keep_newlines=True), file=sys.stderr)
        return EXIT_BAD_INPUT


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="dnne", description="Run dataflow graphs (DNNE-compatible); node packages add subcommands.")
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
    graph_args.add_argument("--allow-env-module", action="append", default=[], metavar="MODULE",
                            dest="allowed_modules", help="let env ids of the form MODULE:EnvId import MODULE; a graph "
                            "file can never import a module by itself (repeatable)")
    graph_args.add_argument("--worker-python", action="append", default=[], metavar="ALIAS=PATH",
                            help="allow a split graph's workers.NAME.python alias to run under PATH (repeatable)")
    sub = parser.add_subparsers(dest="command")
    cli = CommandLine(sub, common, graph_args, run.add_parser(sub, graph_args))
    validate.add_parser(sub, graph_args)
    nodes.add_parser(sub, common)
    convert.add_parser(sub, graph_args)
    draw.add_parser(sub, graph_args)
    load_extensions(cli)
    return parser
