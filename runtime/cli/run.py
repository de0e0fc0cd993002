"""``dnne run``: run directory, resume, progress, signals, uvloop, exit codes."""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from .. import checkpoint
from ..progress import Progress
from ..rundir import RunDirectory
from ..runner import GraphRun, RunResult
from .seeds import run_seeds
from .tracking import TRACKERS, trackers
from .shared import (EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, at_least, install_signal_handlers,
                     load_from_args, loop_factory, registry_for, timestamp)


def add_parser(sub: Any, graph_args: argparse.ArgumentParser) -> None:
    """Add ``run`` to the ``dnne`` parser."""
    run = sub.add_parser("run", parents=[graph_args], help="train (or play) a graph")
    run.add_argument("--max-steps", type=int, help="stop at this many env steps (summed over envs)")
    run.add_argument("--timeout", help="stop after this wall time: 30s, 5m, 1h30m")
    run.add_argument("--seed", type=int, help="run seed")
    run.add_argument("--device", choices=("cpu", "cuda"), help="default device")
    run.add_argument("--run-dir", "--save-checkpoint-dir", dest="run_dir", help="where the run writes")
    run.add_argument("--resume", "--load-checkpoint-dir", dest="resume", metavar="RUN_DIR",
                     help="continue the run in RUN_DIR from its latest checkpoint")
    run.add_argument("--inference", action="store_true", help="DNNE's flag: play the graph (no training)")
    run.add_argument("--headless", action="store_true", help="DNNE's flag: accepted; runs are headless")
    run.add_argument("--threads", type=at_least(1), default=1, help="torch threads (default 1)")
    run.add_argument("--checkpoint-every", type=at_least(0), help="save a checkpoint every N iterations")
    run.add_argument("--no-uvloop", action="store_true", help="use asyncio's own event loop")
    run.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                     help="run once per seed, each in RUN_DIR/seed-N (see --jobs)")
    run.add_argument("--jobs", type=at_least(1), default=1, help="with --seeds: runs at once, each in its own process")
    run.add_argument("--track", nargs="*", choices=TRACKERS, metavar="SINK",
                     help=f"also log metrics to {', '.join(TRACKERS)} (bare --track: wandb)")
    run.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    """``dnne run``: load, run with a run directory, progress and signal handling; exit code by outcome."""
    if getattr(args, "seeds", None):
        return run_seeds(args, cmd_run)
    import torch

    registry = registry_for(args)

    torch.set_num_threads(max(args.threads, 1))
    restore = None
    if args.resume:
        run_dir = Path(args.resume)
        if not args.file:
            args.file = str(run_dir / "graph.json")
        restore = checkpoint.load(run_dir)
    run_section = {"seed": args.seed, "device": args.device, "max_steps": args.max_steps, "timeout": args.timeout,
                   "mode": "play" if args.inference else None}
    graph = load_from_args(args, registry, run_section)
    if not args.resume:
        run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / f"{Path(args.file).stem}-{timestamp()}"
    every = args.checkpoint_every if args.checkpoint_every is not None else int(graph.run.get("checkpoint_every") or 0)
    directory = RunDirectory(run_dir, every, int(graph.run.get("keep_checkpoints") or 3),
                             sinks=trackers(getattr(args, "track", None)))
    hooks: list[Any] = [directory]
    if not args.quiet:
        hooks.append(Progress())
    graph_run = GraphRun(graph, registry, run_dir=run_dir, hooks=hooks, restore=restore)

    async def main() -> RunResult:
        task = asyncio.current_task()
        assert task is not None

        def abort() -> None:
            directory.abort = True
            print("second signal: aborting without saving", file=sys.stderr, flush=True)
            task.cancel()

        install_signal_handlers(asyncio.get_running_loop(), lambda: graph_run.request_stop("interrupted"), abort)
        return await graph_run.execute()

    try:
        with asyncio.Runner(loop_factory=loop_factory(args.no_uvloop)) as runner:
            result = runner.run(main())
    except asyncio.CancelledError:
        return EXIT_INTERRUPTED
    except checkpoint.CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return report(result, run_dir)


def report(result: RunResult, run_dir: Path) -> int:
    """Print how the run ended and map it to an exit code."""
    counters = result.counters
    mean = counters.get("mean_return")
    print(f"stopped: {result.stop_reason}{' (solved)' if result.solved else ''} after {int(counters.get('env_steps', 0))}"
          f" env steps, {int(counters.get('iterations', 0))} iterations, {result.wall_time_s:.1f}s"
          + (f", mean_return {mean:.1f}" if mean is not None else "") + f"; run directory {run_dir}",
          file=sys.stderr)
    if result.error is not None:
        print(f"error: {result.error}", file=sys.stderr)
        if result.error.phase == "setup" and isinstance(result.error.cause, (ValueError, ImportError)):
            return EXIT_BAD_INPUT
        return EXIT_FAILED
    if result.stop_reason == "interrupted":
        return EXIT_INTERRUPTED
    return EXIT_OK

