"""``dnne run`` end to end: run directory, resume, progress, signals, uvloop, exit codes."""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from . import checkpoint
from .progress import Progress
from .registry import NodeRegistry
from .rundir import RunDirectory
from .runner import GraphRun, RunResult

log = logging.getLogger("dnne")
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def execute_cli_run(args: argparse.Namespace, registry: NodeRegistry) -> int:
    """Run the graph named by ``args`` and return the process exit code."""
    from .cli import install_signal_handlers, load_from_args, timestamp

    import torch

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
    directory = RunDirectory(run_dir, every, int(graph.run.get("keep_checkpoints") or 3))
    hooks: list[Any] = [directory]
    if not args.quiet:
        hooks.append(Progress())
    from .placement.interpreters import allowed_interpreters

    graph_run = GraphRun(graph, registry, run_dir=run_dir, hooks=hooks, restore=restore,
                         worker_python=allowed_interpreters(args.worker_python))

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
        with asyncio.Runner(loop_factory=_loop_factory(args.no_uvloop)) as runner:
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


def _loop_factory(disabled: bool) -> Any:
    if disabled:
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
