"""``dnne play``: run a trained graph without the nodes marked ``training_only``; nothing here names a node type."""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from pathlib import Path
from typing import Any

from dnne.runtime import checkpoint
from dnne.runtime.runner import GraphRun
from dnne.runtime.stopping import stop_keys
from dnne.runtime.cli.shared import at_least, load_from_args, registry_for


def add_parser(sub: Any, graph_args: argparse.ArgumentParser) -> None:
    """Add ``play`` to the ``dnne`` parser."""
    play = sub.add_parser("play", parents=[graph_args], help="run a trained graph without its training nodes")
    add_evaluation_args(play)
    play.add_argument("--realtime", action="store_true", help="pace steps to the env's dt")
    play.add_argument("--video", metavar="DIR", help="record videos of env 0's episodes where the env can render")
    play.add_argument("--video-format", choices=("mp4", "gif"), default="mp4", help="video format (default mp4)")
    play.set_defaults(handler=cmd_play)


def add_evaluation_args(parser: argparse.ArgumentParser) -> None:
    """The arguments ``play`` and ``eval`` share."""
    parser.add_argument("--checkpoint", required=True, help="checkpoint file or run directory")
    parser.add_argument("--episodes", type=at_least(1), default=10, help="run exactly this many fresh episodes "
                        "(default 10)")
    parser.add_argument("--max-steps", type=at_least(1), help="also stop after this many env steps")
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of acting deterministically")
    parser.add_argument("--seed", type=at_least(0), help="seed of the evaluation episodes (default: the graph's)")


def cmd_play(args: argparse.Namespace) -> int:
    """Play a checkpoint on fresh episodes: deterministic actions unless ``--stochastic``, optionally paced to real
    time; prints mean and std of the returns and each episode's return and length as JSON."""
    import torch

    torch.set_num_threads(1)
    registry = registry_for(args)
    state = checkpoint.load(Path(args.checkpoint))
    # The training graph's stop conditions are not the evaluation's: it ends after its episodes (or --max-steps).
    settings = {"mode": "play", "seed": args.seed, "max_episodes": args.episodes, "max_steps": args.max_steps,
                "realtime": getattr(args, "realtime", False) or None, "stochastic": args.stochastic or None,
                "video_dir": getattr(args, "video", None), "video_format": getattr(args, "video_format", None)}
    graph = load_from_args(args, registry, settings, drop_run=stop_keys(registry.vocabulary.shorthands))
    episodes: list[dict[str, float]] = []

    def collect(node_id: str, values: dict[str, Any]) -> None:
        if "episode_return" in values and "episode_length" in values:
            episodes.append({"return": float(values["episode_return"]), "length": int(values["episode_length"])})

    from dnne.runtime.placement.interpreters import allowed_interpreters

    run = GraphRun(graph, registry, mode="play", restore=policy_state(state, graph, registry),
                   worker_python=allowed_interpreters(args.worker_python))
    run.context.metric_sinks.append(collect)
    result = asyncio.run(run.execute())
    if result.error is not None:
        print(f"error: {result.error}", file=sys.stderr)
        return 1
    print(json.dumps(episode_report(episodes[:args.episodes], int(result.counters.get("env_steps", 0)),
                                    args.episodes)))
    return 0


def episode_report(episodes: list[dict[str, float]], env_steps: int, asked: int) -> dict[str, Any]:
    """Mean and (population) standard deviation of the episodes' returns and lengths, and each episode."""
    returns = [e["return"] for e in episodes]
    lengths = [e["length"] for e in episodes]
    count = len(episodes)
    mean = sum(returns) / count if count else None
    std = math.sqrt(sum((r - mean) ** 2 for r in returns) / count) if mean is not None else None
    report = {"episodes": count, "mean_return": mean, "std_return": std,
              "mean_length": sum(lengths) / count if count else None, "env_steps": env_steps,
              "returns": returns, "lengths": lengths}
    if count < asked:
        report["note"] = f"stopped after {count} of the {asked} episodes asked for (--max-steps)"
    return report


def policy_state(state: dict[str, Any], graph: Any, registry: Any) -> dict[str, Any]:
    """The part of a checkpoint a replay starts from: the state of the nodes that act (those that can export a
    deployable policy), without the run counters and the environments' states, so the episodes are fresh ones of
    the replay's own seed and size."""
    acting = {node_id for node_id, spec in graph.nodes.items()
              if hasattr(registry.get(spec.type), "deployable")}
    return dict(state, counters={}, windows={}, shared={},
                nodes={node_id: node_state for node_id, node_state in state["nodes"].items() if node_id in acting})


def without_counters(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint without its run counters, windows and shared values, so a replay starts its own count."""
    return dict(state, counters={}, windows={}, shared={})
