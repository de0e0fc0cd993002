"""``dnne play``: run a trained graph without the nodes marked ``training_only``; nothing here names a node type."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from .. import checkpoint
from ..runner import GraphRun
from .shared import load_from_args, registry_for


def add_parser(sub: Any, graph_args: argparse.ArgumentParser) -> None:
    """Add ``play`` to the ``dnne`` parser."""
    play = sub.add_parser("play", parents=[graph_args], help="run a trained graph without its training nodes")
    play.add_argument("--checkpoint", required=True, help="checkpoint file or run directory")
    play.add_argument("--episodes", type=int, default=10, help="stop after this many episodes (default 10)")
    play.add_argument("--max-steps", type=int, help="stop after this many env steps")
    play.add_argument("--realtime", action="store_true", help="pace steps to the env's dt")
    play.add_argument("--stochastic", action="store_true", help="sample actions instead of acting deterministically")
    play.add_argument("--seed", type=int, help="run seed")
    play.add_argument("--video", metavar="DIR", help="record videos of env 0's episodes where the env can render")
    play.add_argument("--video-format", choices=("mp4", "gif"), default="mp4", help="video format (default mp4)")
    play.set_defaults(handler=cmd_play)


def cmd_play(args: argparse.Namespace) -> int:
    """Play a checkpoint: deterministic actions unless ``--stochastic``, optionally paced to real time."""
    import torch

    torch.set_num_threads(1)
    registry = registry_for(args)
    state = checkpoint.load(Path(args.checkpoint))
    graph = load_from_args(args, registry, {"mode": "play", "seed": args.seed, "max_episodes": args.episodes,
                                            "max_steps": args.max_steps, "target_return": None})
    graph.run["target_return"] = None
    graph.run.update(realtime=args.realtime, stochastic=args.stochastic, video_dir=args.video,
                     video_format=args.video_format)
    run = GraphRun(graph, registry, mode="play", restore=without_counters(state))
    result = asyncio.run(run.execute())
    if result.error is not None:
        print(f"error: {result.error}", file=sys.stderr)
        return 1
    counters = result.counters
    print(json.dumps({"episodes": int(counters.get("episodes", 0)), "mean_return": counters.get("mean_return"),
                      "mean_length": counters.get("mean_length"), "env_steps": int(counters.get("env_steps", 0))}))
    return 0


def without_counters(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint without its run counters and shared values, so a replay starts its own count."""
    return dict(state, counters={}, shared={})
