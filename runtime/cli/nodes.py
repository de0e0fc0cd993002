"""``dnne nodes``: node types with their ports, params and docs."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .shared import EXIT_BAD_INPUT, EXIT_OK, registry_for


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``nodes`` to the ``dnne`` parser."""
    nodes = sub.add_parser("nodes", parents=[common], help="list node types with ports, params and docs")
    nodes.add_argument("type", nargs="?", help="one node type")
    nodes.add_argument("--json", action="store_true", help="machine-readable output")
    nodes.add_argument("--run-keys", action="store_true", help="list the run-section keys instead (the engine's and "
                       "those node packages register)")
    nodes.set_defaults(handler=cmd_nodes)


def cmd_nodes(args: argparse.Namespace) -> int:
    """``dnne nodes [TYPE]``."""
    registry = registry_for(args)
    if getattr(args, "run_keys", False):
        keys = registry.vocabulary.run_keys
        shorthands = registry.vocabulary.shorthands
        for name, key in keys.items():
            short = shorthands.get(name)
            means = f" (= {{\"counter\": \"{short.counter}\", \"{short.op}\": VALUE}})" if short else ""
            print(f"{name}{means}: {key.doc}")
        return EXIT_OK
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
        print(format_node(info))
    return EXIT_OK


def format_node(info: dict[str, Any]) -> str:
    """One node type's description as text."""
    lines = [f"{info['type']}  [{info['category']}]  ({info['source']})", f"    {info['doc']}"]
    for title, key in (("inputs", "inputs"), ("outputs", "outputs")):
        if info[key]:
            lines.append(f"  {title}:")
            for name, port in info[key].items():
                flags = [f for f, on in (("optional", port.get("optional")), ("fan-in", port.get("fan_in")),
                                          (f"primed {port.get('primed')}", port.get("primed")),
                                          (f"rule {port.get('rule')}", port.get("rule"))) if on]
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
