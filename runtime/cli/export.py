"""``dnne export``: each deployable node's module as TorchScript (and ONNX), driven by node declarations."""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from .. import checkpoint
from ..loading import load_graph
from ..registry import default_registry
from ..runner import GraphRun
from .play import without_counters


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``export`` to the ``dnne`` parser."""
    export = sub.add_parser("export", parents=[common], help="write the policy as TorchScript (and ONNX)")
    export.add_argument("source", metavar="RUN_DIR|CHECKPOINT")
    export.add_argument("-o", "--output", required=True, help="output path (.pt; .onnx is written beside it)")
    export.add_argument("--graph", help="graph file (default: graph.json of the run directory)")
    export.set_defaults(handler=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    """Export each deployable node's module as TorchScript (and ONNX when the ``onnx`` package is installed)."""
    source = Path(args.source)
    graph_file = Path(args.graph) if args.graph else (source if source.is_dir() else source.parent.parent) / "graph.json"
    modules = deployable_modules(graph_file, source, args.plugin)
    if not modules:
        print("error: no node in this graph can export a deployable module", file=sys.stderr)
        return 2
    output = Path(args.output)
    for node_id, (module, example) in modules.items():
        path = output if len(modules) == 1 else output.with_name(f"{output.stem}-{node_id}{output.suffix}")
        export_module(module, example, path)
        print(path)
    return 0


def deployable_modules(graph_file: Path, source: Path, plugins: list[str]) -> dict[str, Any]:
    """Set up the graph in play mode, restore the checkpoint, and collect ``deployable()`` modules by node id."""
    registry = default_registry(plugins)
    graph = load_graph(graph_file, registry=registry, run={"mode": "play"})
    state = checkpoint.load(source)
    run = GraphRun(graph, registry, mode="play")
    run.build()

    async def setup() -> dict[str, Any]:
        for node_id in run.order:
            await run.nodes[node_id].setup()
        checkpoint.restore(without_counters(state), run)
        found = {node_id: node.deployable() for node_id, node in run.nodes.items() if hasattr(node, "deployable")}
        for node_id in reversed(run.order):
            await run.nodes[node_id].teardown()
        return found

    return asyncio.run(setup())


def export_module(module: Any, example: Any, path: Path) -> None:
    """Write ``module`` as TorchScript to ``path`` and as ONNX beside it when ``onnx`` is importable."""
    import importlib.util

    import torch

    scripted = torch.jit.trace(module, example)
    path.parent.mkdir(parents=True, exist_ok=True)
    scripted.save(str(path))
    if importlib.util.find_spec("onnx") is not None:
        torch.onnx.export(module, (example,), str(path.with_suffix(".onnx")), input_names=["observations"],
                          output_names=["actions"], dynamic_axes={"observations": {0: "batch"}}, dynamo=False)
