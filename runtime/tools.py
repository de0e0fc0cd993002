"""``dnne play``, ``dnne plot`` and ``dnne export``: generic over node types, driven by their declarations.

``play`` leaves out nodes marked ``training_only``; ``export`` asks every node that has a ``deployable()``
method for its module. Nothing here names an RL node type.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from . import checkpoint
from .loading import load_graph
from .registry import default_registry
from .runner import GraphRun


def add_tool_commands(sub: Any, graph_args: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    """Add play, plot and export to the ``dnne`` parser."""
    play = sub.add_parser("play", parents=[graph_args], help="run a trained graph without its training nodes")
    play.add_argument("--checkpoint", required=True, help="checkpoint file or run directory")
    play.add_argument("--episodes", type=int, default=10, help="stop after this many episodes (default 10)")
    play.add_argument("--max-steps", type=int, help="stop after this many env steps")
    play.add_argument("--realtime", action="store_true", help="pace steps to the env's dt")
    play.add_argument("--stochastic", action="store_true", help="sample actions instead of acting deterministically")
    play.add_argument("--seed", type=int, help="run seed")
    play.add_argument("--video", metavar="DIR", help="record episode videos (GIF) where the env can render")
    play.set_defaults(handler=cmd_play)

    plot = sub.add_parser("plot", parents=[common], help="learning curves of runs as a PNG")
    plot.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    plot.add_argument("-o", "--output", help="PNG path (default: FIRST_RUN_DIR/curves.png)")
    plot.set_defaults(handler=cmd_plot)

    export = sub.add_parser("export", parents=[common], help="write the policy as TorchScript (and ONNX)")
    export.add_argument("source", metavar="RUN_DIR|CHECKPOINT")
    export.add_argument("-o", "--output", required=True, help="output path (.pt; .onnx is written beside it)")
    export.add_argument("--graph", help="graph file (default: graph.json of the run directory)")
    export.set_defaults(handler=cmd_export)


def cmd_play(args: argparse.Namespace) -> int:
    """Play a checkpoint: deterministic actions unless ``--stochastic``, optionally paced to real time."""
    import torch

    from .cli import load_from_args

    torch.set_num_threads(1)
    registry = default_registry(args.plugin)
    state = checkpoint.load(Path(args.checkpoint))
    graph = load_from_args(args, registry, {"mode": "play", "seed": args.seed, "max_episodes": args.episodes,
                                            "max_steps": args.max_steps, "target_return": None})
    graph.run["target_return"] = None
    graph.run.update(realtime=args.realtime, stochastic=args.stochastic, video_dir=args.video)
    run = GraphRun(graph, registry, mode="play", restore=_without_counters(state))
    result = asyncio.run(run.execute())
    if result.error is not None:
        print(f"error: {result.error}", file=sys.stderr)
        return 1
    counters = result.counters
    print(json.dumps({"episodes": int(counters.get("episodes", 0)), "mean_return": counters.get("mean_return"),
                      "mean_length": counters.get("mean_length"), "env_steps": int(counters.get("env_steps", 0))}))
    return 0


def _without_counters(state: dict[str, Any]) -> dict[str, Any]:
    return dict(state, counters={}, shared={})


def cmd_plot(args: argparse.Namespace) -> int:
    """Plot return against env steps and wall time, and the losses, for one or more runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {str(Path(d)): read_metrics(Path(d)) for d in args.run_dirs}
    figure, axes = plt.subplots(2, 2, figsize=(12, 8))
    panels = [("env_steps", "mean_return"), ("wall_time_s", "mean_return"), ("env_steps", "policy_loss"),
              ("env_steps", "value_loss")]
    for axis, (x_key, y_key) in zip(axes.flat, panels):
        for name, rows in runs.items():
            points = [(r[x_key], r[y_key]) for r in rows if r.get(y_key) is not None and x_key in r]
            if points:
                xs, ys = zip(*points)
                axis.plot(xs, ys, label=Path(name).name)
        axis.set_xlabel(x_key)
        axis.set_ylabel(y_key)
        axis.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    figure.tight_layout()
    output = Path(args.output) if args.output else Path(args.run_dirs[0]) / "curves.png"
    figure.savefig(output, dpi=100)
    print(output)
    return 0


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of ``RUN_DIR/metrics.jsonl``."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} has no metrics.jsonl: is it a run directory?")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


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
        checkpoint.restore(_without_counters(state), run)
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
        # A module with memory takes and returns its state beside the observations and actions.
        stateful = isinstance(example, tuple)
        inputs, outputs = (["observations", "state"], ["actions", "next_state"]) if stateful else \
            (["observations"], ["actions"])
        torch.onnx.export(module, example if stateful else (example,), str(path.with_suffix(".onnx")),
                          input_names=inputs, output_names=outputs,
                          dynamic_axes={name: {0: "batch"} for name in inputs + outputs}, dynamo=False)
