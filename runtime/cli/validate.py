"""``dnne validate``: check a graph file and print every error."""
from __future__ import annotations

import argparse
from typing import Any

from ..errors import printable
from .shared import EXIT_OK, load_from_args, registry_for


def add_parser(sub: Any, graph_args: argparse.ArgumentParser) -> None:
    """Add ``validate`` to the ``dnne`` parser."""
    validate = sub.add_parser("validate", parents=[graph_args], help="check a graph file, print every error")
    validate.set_defaults(handler=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    """``dnne validate``."""
    graph = load_from_args(args, registry_for(args))
    print(printable(f"{args.file}: valid ({len(graph.nodes)} nodes, {len(graph.links)} links)"))
    return EXIT_OK
