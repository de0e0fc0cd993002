"""``dnne convert``: any graph format to the native one."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .shared import EXIT_OK, load_from_args, registry_for


def add_parser(sub: Any, graph_args: argparse.ArgumentParser) -> None:
    """Add ``convert`` to the ``dnne`` parser."""
    convert = sub.add_parser("convert", parents=[graph_args], help="write a graph in the native format")
    convert.add_argument("-o", "--output", help="output file (default: stdout)")
    convert.set_defaults(handler=cmd_convert)


def cmd_convert(args: argparse.Namespace) -> int:
    """``dnne convert``: the graph in the native format."""
    graph = load_from_args(args, registry_for(args))
    text = json.dumps(graph.to_native(), indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return EXIT_OK
