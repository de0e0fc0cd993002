"""``dnne export``: each deployable node's policy, with what the nodes downstream of it do to its actions, as a
``torch.export`` program (and ONNX through the dynamo exporter); driven by node declarations, never node types.

A node that can be deployed has ``deployable()``, returning ``(module, example_input)`` or ``(module,
example_input, metadata)``. A node downstream of it may have ``deploy_transform()``, returning a module applied to
the outputs (an action rescale) or None; the chain of such nodes is appended in link order.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from dnne.runtime import checkpoint
from dnne.runtime.loading import load_graph
from dnne.runtime.registry import default_registry
from dnne.runtime.runner import GraphRun

from .play import best_file, with_best, without_counters


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``export`` to the ``dnne`` parser."""
    export = sub.add_parser("export", parents=[common], help="write the policy for deployment (torch.export, ONNX)")
    export.add_argument("source", metavar="RUN_DIR|CHECKPOINT")
    export.add_argument("-o", "--output", required=True,
                        help="output path (.pt2); the ONNX file and a JSON of the spaces are written beside it")
    export.add_argument("--graph", help="graph file (default: graph.json of the run directory)")
    export.add_argument("--no-onnx", action="store_true", help="write only the torch.export program")
    export.add_argument("--best", action="store_true", help="export the weights that evaluated best during training "
                        "(run.eval; a run directory's checkpoints/best.pt) instead of the latest")
    export.set_defaults(handler=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    """Export each deployable node's policy; print every path written."""
    source = Path(args.source)
    graph_file = Path(args.graph) if args.graph else (source if source.is_dir() else source.parent.parent) / "graph.json"
    modules = deployable_modules(graph_file, source, args.plugin, args.best)
    if not modules:
        print("error: no node in this graph can export a deployable module", file=sys.stderr)
        return 2
    output = Path(args.output)
    for node_id, (module, example, metadata) in modules.items():
        path = output if len(modules) == 1 else output.with_name(f"{output.stem}-{node_id}{output.suffix}")
        for written in export_module(module, example, metadata, path, onnx=not args.no_onnx):
            print(written)
    return 0


def deployable_modules(graph_file: Path, source: Path, plugins: list[str], best: bool = False) -> dict[str, Any]:
    """Set up the graph in play mode, restore the checkpoint (``best``: with the weights that evaluated best), and
    collect by node id each deployable node's module (followed by its downstream deploy transforms), example input
    and metadata."""
    registry = default_registry(plugins)
    graph = load_graph(graph_file, registry=registry, run={"mode": "play"})
    graph.placement = {}  # a split run's nodes are set up here, in one process: export starts no workers
    state = with_best(checkpoint.load(best_file(source))) if best else checkpoint.load(source)
    run = GraphRun(graph, registry, mode="play")
    run.build()

    async def setup() -> dict[str, Any]:
        for node_id in run.order:
            await run.nodes[node_id].setup()
        checkpoint.restore(without_counters(state), run)
        found = {node_id: with_transforms(run, node_id, node.deployable())
                 for node_id, node in run.nodes.items() if hasattr(node, "deployable")}
        for node_id in reversed(run.order):
            await run.nodes[node_id].teardown()
        return found

    return asyncio.run(setup())


def with_transforms(run: GraphRun, node_id: str, deployable: tuple[Any, ...]) -> tuple[Any, Any, dict[str, Any]]:
    """The deployable module followed by the deploy transforms of the nodes downstream of it, in link order."""
    import torch

    module, example = deployable[0], deployable[1]
    metadata = dict(deployable[2]) if len(deployable) > 2 else {}
    transforms, chain, current = [], [], node_id
    while True:
        following = [link.dst for link in run.graph.links if link.src == current and link.dst in run.nodes
                     and hasattr(run.nodes[link.dst], "deploy_transform")]
        if not following:
            break
        current = following[0]
        transform = run.nodes[current].deploy_transform()
        if transform is not None:
            transforms.append(transform)
            chain.append(current)
    metadata["node"] = node_id
    metadata["applies"] = chain
    if not transforms:
        return module, example, metadata
    if isinstance(example, tuple):
        from .stateful import FirstOutputThen

        return FirstOutputThen(module, torch.nn.Sequential(*transforms)), example, metadata
    return torch.nn.Sequential(module, *transforms), example, metadata


def export_module(module: Any, example: Any, metadata: dict[str, Any], path: Path, onnx: bool = True) -> list[Path]:
    """Write ``module`` as a ``torch.export`` program (batch dimension dynamic, ``metadata`` inside as
    ``extra/dnne.json``), its metadata as JSON beside it, and ONNX beside it (dynamo exporter, metadata as model
    properties) when ``onnx`` and ``onnxscript`` are installed. Returns the paths written."""
    import torch

    module = module.eval()
    inputs = example if isinstance(example, tuple) else (example,)
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(module, inputs, dynamic_shapes=tuple({0: batch} for _ in inputs))
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(metadata, indent=2)
    torch.export.save(program, str(path), extra_files={"dnne.json": text})
    meta_path = path.with_suffix(".json")
    meta_path.write_text(text + "\n")
    written = [path, meta_path]
    if onnx:
        if importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxscript") is None:
            print("note: ONNX skipped: pip install onnx onnxscript", file=sys.stderr)
        else:
            written += export_onnx(module, example, metadata, path.with_suffix(".onnx"))
    return written


def export_onnx(module: Any, example: Any, metadata: dict[str, Any], path: Path) -> list[Path]:
    """Write ``module`` as ONNX through torch's dynamo exporter with the metadata as model properties."""
    import onnx
    import torch

    inputs = example if isinstance(example, tuple) else (example,)
    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(module, inputs, dynamo=True, input_names=["observations", "state"][:len(inputs)],
                                output_names=["actions", "next_state"][:len(inputs)],
                                dynamic_shapes=tuple({0: batch} for _ in inputs), verbose=False)
    model = program.model_proto
    onnx.helper.set_model_props(model, {"dnne": json.dumps(metadata)})
    onnx.save(model, str(path))
    return [path]

