"""``dnne graph``: a graph as Mermaid or Graphviz DOT text, or a PNG through Graphviz."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import printable
from ..graph import Graph
from .shared import EXIT_BAD_INPUT, EXIT_OK, load_from_args, registry_for


def add_parser(sub: Any, graph_args: argparse.ArgumentParser) -> None:
    """Add ``graph`` to the ``dnne`` parser."""
    draw = sub.add_parser("graph", parents=[graph_args], help="the graph as Mermaid or Graphviz DOT text")
    draw.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    draw.add_argument("-o", "--output", help="write to a file; a .png path renders with Graphviz's dot")
    draw.set_defaults(handler=cmd_graph)


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
    lines += [f'    {ids[n]}["{_mermaid(n)}: {_mermaid(spec.type)}"]' for n, spec in graph.nodes.items()]
    lines += [f'    {ids[l.src]} -->|"{_mermaid(l.src_port)} → {_mermaid(l.dst_port)}"| {ids[l.dst]}'
              for l in graph.links]
    return "\n".join(lines) + "\n"


def to_dot(graph: Graph) -> str:
    """The graph as Graphviz DOT."""
    lines = ["digraph dnne {", "    rankdir=LR;", "    node [shape=box];"]
    lines += [f'    "{_label(n)}" [label="{_label(n)}\\n{_label(spec.type)}"];' for n, spec in graph.nodes.items()]
    lines += [f'    "{_label(l.src)}" -> "{_label(l.dst)}" [label="{_label(l.src_port)} → {_label(l.dst_port)}"];'
              for l in graph.links]
    return "\n".join(lines + ["}"]) + "\n"


def _label(text: str) -> str:
    """``text`` inside a DOT quoted string: backslashes and quotes escaped, control characters written out."""
    return printable(text).replace("\\", "\\\\").replace('"', '\\"')


_MERMAID_ENTITIES = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "`": "#96;", "|": "#124;",
                     "[": "#91;", "]": "#93;", "{": "#123;", "}": "#125;", "(": "#40;", ")": "#41;"}


def _mermaid(text: str) -> str:
    """``text`` inside a Mermaid quoted label: every character that could close the label or start markup as an
    entity code, control characters written out."""
    return "".join(_MERMAID_ENTITIES.get(char, char) for char in printable(text))
