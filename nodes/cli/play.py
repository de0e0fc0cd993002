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
from dnne.runtime.cli.shared import at_least, load_from_args, registry_for
from dnne.runtime.runner import GraphRun
from dnne.runtime.stopping import stop_keys


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
    parser.add_argument("--best", action="store_true", help="act with the weights that evaluated best during "
                        "training (run.eval; a run directory's checkpoints/best.pt) instead of the latest")


def cmd_play(args: argparse.Namespace) -> int:
    """Play a checkpoint on fresh episodes: deterministic actions unless ``--stochastic``, optionally paced to real
    time; prints mean and std of the returns and each episode's return and length as JSON."""
    from dnne.runtime.threads import use_threads

    use_threads(1)
    registry = registry_for(args)
    source = Path(args.checkpoint)
    state = with_best(checkpoint.load(best_file(source))) if args.best else checkpoint.load(source)
    # The training graph's stop conditions are not the evaluation's: it ends after its episodes (or --max-steps).
    settings = {"mode": "play", "seed": args.seed, "max_steps": args.max_steps,
                "realtime": getattr(args, "realtime", False) or None, "stochastic": args.stochastic or None,
                "video_dir": getattr(args, "video", None), "video_format": getattr(args, "video_format", None)}
    graph = load_from_args(args, registry, settings, drop_run=stop_keys(registry.vocabulary.shorthands))
    from dnne.runtime.placement.interpreters import allowed_interpreters

    run = GraphRun(graph, registry, mode="play", restore=policy_state(state, graph, registry),
                   worker_python=allowed_interpreters(args.worker_python))
    quota = EpisodeQuota(args.episodes)

    def collect(node_id: str, values: dict[str, Any]) -> None:
        if "episode_return" in values and "episode_length" in values and quota.add(node_id, values):
            run.request_stop("max_episodes")

    run.context.metric_sinks.append(collect)
    result = asyncio.run(run.execute())
    if result.error is not None:
        print(f"error: {result.error}", file=sys.stderr)
        return 1
    print(json.dumps(episode_report(quota.episodes(), int(result.counters.get("env_steps", 0)), args.episodes)))
    return 0


class EpisodeQuota:
    """Which finished episodes an evaluation of ``asked`` episodes counts: every env (stream) runs a fixed quota.

    Counting the first ``asked`` episodes to finish would favour short episodes when a group has several envs
    (envs that finish fast fill the count). Each episode row names its env (``episode_env``) and its group's size
    (``num_envs``); the ``asked`` episodes are split over the envs of the groups seen, as evenly as possible, and an
    env's episodes beyond its quota are not counted. Rows without an env index (a node that does not say) count
    in the order they finish.
    """

    def __init__(self, asked: int) -> None:
        self.asked = asked
        self.groups: dict[str, int] = {}
        self.finished: dict[tuple[str, int], list[dict[str, float]]] = {}
        self.unindexed: list[dict[str, float]] = []

    def add(self, node_id: str, values: dict[str, Any]) -> bool:
        """Take one episode row; whether every quota is now filled."""
        episode = {"return": float(values["episode_return"]), "length": int(values["episode_length"])}
        if "episode_env" not in values or "num_envs" not in values:
            self.unindexed.append(episode)
            return len(self.unindexed) >= self.asked
        self.groups.setdefault(node_id, int(values["num_envs"]))
        self.finished.setdefault((node_id, int(values["episode_env"])), []).append(episode)
        return all(len(self.finished.get(stream, ())) >= wanted for stream, wanted in self.quotas().items())

    def quotas(self) -> dict[tuple[str, int], int]:
        """Each env's quota: ``asked`` split over the envs of the groups seen, the first envs taking one more."""
        streams = [(node_id, env) for node_id, size in self.groups.items() for env in range(size)]
        base, extra = divmod(self.asked, len(streams))
        return {stream: base + (1 if index < extra else 0) for index, stream in enumerate(streams)}

    def episodes(self) -> list[dict[str, float]]:
        """The counted episodes, env by env."""
        if self.unindexed:
            return self.unindexed[:self.asked]
        return [episode for stream, wanted in self.quotas().items()
                for episode in self.finished.get(stream, [])[:wanted]] if self.groups else []


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
    the replay's own seed and size. Nodes of the training graph that the replay's graph does not have (an
    evaluation node that ``run.eval`` added) drop out of the graph check; the nodes it has must still match."""
    acting = {node_id for node_id, spec in graph.nodes.items()
              if hasattr(registry.get(spec.type), "deployable")}
    saved = {node_id: node_type for node_id, node_type in state.get("graph", {}).items() if node_id in graph.nodes}
    return dict(state, counters={}, windows={}, shared={}, graph=saved,
                nodes={node_id: node_state for node_id, node_state in state["nodes"].items() if node_id in acting})


def best_file(source: Path) -> Path:
    """Where the best evaluated weights of ``source`` are: a run directory's kept ``best.pt`` (written at each new
    best, never pruned); a checkpoint file itself, or the run's latest checkpoint when it keeps no ``best.pt`` (its
    evaluation node's state holds the best so far)."""
    if source.is_dir():
        for folder in (source / "checkpoints", source):
            if (folder / "best.pt").is_file():
                return folder / "best.pt"
    return source


def with_best(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with the best evaluated weights in place of the latest: a node whose state holds ``best`` (its
    ``parameters``, ``version`` and the ``agent`` they belong to) names the acting node whose ``model`` they replace.

    Raises:
        checkpoint.CheckpointError: the checkpoint holds no best weights (no evaluation ran, or none finished).
    """
    bests = [node_state["best"] for node_state in state["nodes"].values()
             if isinstance(node_state, dict) and isinstance(node_state.get("best"), dict)]
    if not bests:
        raise checkpoint.CheckpointError("the checkpoint holds no best weights: the run evaluated nothing (train "
                                         "with run.eval, see docs/runs.md)")
    nodes = dict(state["nodes"])
    for best in bests:
        agent = best.get("agent")
        if agent not in nodes or not isinstance(nodes[agent], dict) or "model" not in nodes[agent]:
            raise checkpoint.CheckpointError(f"the best weights belong to node {agent!r}, which the checkpoint "
                                             "holds no model of")
        nodes[agent] = dict(nodes[agent], model=best["parameters"], version=best["version"])
    return dict(state, nodes=nodes)


def without_counters(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint without its run counters, windows and shared values, so a replay starts its own count."""
    return dict(state, counters={}, windows={}, shared={})
