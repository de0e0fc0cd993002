"""``dnne run``: run directory, resume, progress, signals, uvloop, exit codes."""
from __future__ import annotations

import argparse
import asyncio
import math
import sys
from pathlib import Path
from typing import Any

from .. import checkpoint
from ..durations import parse_duration
from ..errors import GraphError, printable
from ..graph import Graph
from ..loaders.document import parse_document
from ..loop_watchdog import LoopWatchdog
from ..placement.failover import REPLACEABLE_CHECKPOINT_INTERVAL_S, replaceable
from ..progress import Progress
from ..registry import NodeRegistry
from ..run_owner import claim
from ..rundir import DEFAULT_CHECKPOINT_INTERVAL_S, RunDirectory
from ..runner import GraphRun, RunResult
from .presets import preset_path
from .seeds import run_seeds
from .tracking import TRACKERS, trackers
from .shared import (EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, at_least, install_signal_handlers,
                     load_from_args, loop_factory, registry_for, timestamp)


def add_parser(sub: Any, graph_args: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``run`` to the ``dnne`` parser; returns its parser (node packages add flags: ``extensions``)."""
    run = sub.add_parser("run", parents=[graph_args], help="train (or play) a graph")
    run.add_argument("--preset", metavar="NAME", help="run the preset graph NAME of graphs/presets instead of a "
                     "FILE (an unknown NAME lists them)")
    run.add_argument("--timeout", help="stop after this wall time: 30s, 5m, 1h30m")
    run.add_argument("--seed", type=at_least(0), help="run seed")
    run.add_argument("--device", choices=("cpu", "cuda"), help="default device")
    run.add_argument("--run-dir", "--save-checkpoint-dir", dest="run_dir", help="where the run writes (a new "
                     "directory, or one holding a run with --force)")
    run.add_argument("--resume", "--load-checkpoint-dir", dest="resume", metavar="RUN_DIR",
                     help="continue the run in RUN_DIR from its newest readable checkpoint, with its saved settings")
    run.add_argument("--force", action="store_true", help="replace the run already in --run-dir")
    run.add_argument("--inference", action="store_true", help="DNNE's flag: play the graph (no training)")
    run.add_argument("--headless", action="store_true", help="DNNE's flag: accepted; runs are headless")
    run.add_argument("--threads", type=at_least(1), help="CPU threads of torch and of numpy's BLAS (default 1)")
    run.add_argument("--checkpoint-every", type=at_least(0), help="also save a checkpoint every N iterations")
    run.add_argument("--checkpoint-interval", type=interval, metavar="DURATION",
                     help="save a checkpoint at the first consistent point after each DURATION (default 10m; "
                     "0 turns it off)")
    run.add_argument("--ray-address", metavar="ADDR", help="the Ray cluster that runs the workers placed on Ray "
                     "(host:port, or auto; run.ray_address); default: a local Ray for the run")
    run.add_argument("--no-uvloop", action="store_true", help="use asyncio's own event loop")
    run.add_argument("--stall-warning", type=interval, default=10.0, metavar="DURATION",
                     help="report a node that holds the event loop this long in one synchronous call (default 10s)")
    run.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                     help="run once per seed, each in RUN_DIR/seed-N (see --jobs)")
    run.add_argument("--jobs", type=at_least(1), default=1, help="with --seeds: runs at once, each in its own process")
    run.add_argument("--track", nargs="*", choices=TRACKERS, metavar="SINK",
                     help=f"also log metrics to {', '.join(TRACKERS)} (bare --track: wandb)")
    run.set_defaults(handler=cmd_run)
    return run


def interval(text: str) -> float:
    """An argparse type: a duration in seconds, or 0 (off)."""
    if text.strip() in ("0", "off"):
        return 0.0
    try:
        return parse_duration(text)
    except (ValueError, OverflowError) as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def cmd_run(args: argparse.Namespace) -> int:
    """``dnne run``: claim the run directory, load, run with checkpoints, progress and signal handling; exit code
    by outcome."""
    if getattr(args, "preset", None):
        if args.file:
            raise ValueError(f"give a graph FILE or --preset, not both ({args.file!r} and --preset {args.preset})")
        args.file, args.preset = str(preset_path(args.preset)), None
    if getattr(args, "seeds", None):
        return run_seeds(args, cmd_run)
    from ..threads import use_threads  # imports torch: after the argument checks

    registry = registry_for(args)
    lock = claim(Path(args.resume), resume=True) if args.resume else None
    try:
        restore = None
        if args.resume:
            run_dir = Path(args.resume)
            if not args.file:
                args.file = str(run_dir / "graph.json")
            settings = resolved_settings(args, saved_settings(run_dir))
            restore = checkpoint.load(run_dir)
        else:
            settings = resolved_settings(args, {})
        run_section = {"seed": args.seed, "device": args.device, "timeout": args.timeout,
                       "mode": "play" if args.inference else None,
                       "ray_address": args.ray_address}
        run_section.update({key: getattr(args, dest) for dest, key in getattr(args, "run_flags", {}).items()})
        graph = load_from_args(args, registry, run_section)
        if not args.resume:
            run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / f"{Path(args.file).stem}-{timestamp()}"
            lock = claim(run_dir, force=args.force)
        use_threads(settings["threads"])
        return run_in(run_dir, graph, registry, restore, settings, args)
    finally:
        if lock is not None:
            lock.release()


def run_in(run_dir: Path, graph: Graph, registry: NodeRegistry, restore: dict[str, Any] | None,
           settings: dict[str, Any], args: argparse.Namespace) -> int:
    """Run ``graph`` in the claimed ``run_dir`` with checkpoints, progress, signal handling and the loop
    watchdog; the exit code by outcome."""
    every = settings["checkpoint_every"] or int(graph.run.get("checkpoint_every") or 0)
    interval_s = settings["checkpoint_interval_s"] or None
    if args.checkpoint_interval is None and replaceable(graph):  # a replaced part goes back at most this far
        interval_s = min(interval_s or REPLACEABLE_CHECKPOINT_INTERVAL_S, REPLACEABLE_CHECKPOINT_INTERVAL_S)
    directory = RunDirectory(run_dir, every, int(graph.run.get("keep_checkpoints") or 3),
                             checkpoint_interval_s=interval_s, settings=settings,
                             sinks=trackers(getattr(args, "track", None)))
    hooks: list[Any] = [directory]
    if not args.quiet:
        hooks.append(Progress())
    from ..placement.interpreters import allowed_interpreters

    graph_run = GraphRun(graph, registry, run_dir=run_dir, hooks=hooks, restore=restore,
                         worker_python=allowed_interpreters(args.worker_python))

    async def main() -> RunResult:
        task = asyncio.current_task()
        assert task is not None

        def abort() -> None:
            directory.abort = True
            print("second signal: aborting without saving", file=sys.stderr, flush=True)
            task.cancel()

        def on_stuck(reason: str, node_id: str | None, description: str) -> int:
            print("\n" + printable(f"{reason} while the event loop is blocked: {description}; saving the last "
                                   "consistent checkpoint and the summary, then exiting"), file=sys.stderr, flush=True)
            directory.save_stuck(graph_run, reason, node_id, description)
            return EXIT_INTERRUPTED if reason == "interrupted" else EXIT_FAILED

        loop = asyncio.get_running_loop()
        install_signal_handlers(loop, lambda: graph_run.request_stop("interrupted"), abort)
        timeout = graph.run.get("timeout")
        watchdog = LoopWatchdog(loop, on_stuck, stall_s=args.stall_warning or float("inf"),
                                deadline_s=None if timeout is None else parse_duration(timeout) + 1.0)
        try:
            return await graph_run.execute()
        finally:
            watchdog.stop()

    try:
        with asyncio.Runner(loop_factory=loop_factory(args.no_uvloop)) as runner:
            result = runner.run(main())
    except asyncio.CancelledError:
        return EXIT_INTERRUPTED
    return report(result, run_dir, directory.checkpoint_error)


SETTINGS_DEFAULTS: dict[str, Any] = {"threads": 1, "checkpoint_every": 0,
                                     "checkpoint_interval_s": DEFAULT_CHECKPOINT_INTERVAL_S}


def saved_settings(run_dir: Path) -> dict[str, Any]:
    """The command-line settings a run saved in ``run.json``; only known numeric settings are taken (a run
    directory is data: nothing in it names code to run)."""
    path = run_dir / "run.json"
    if not path.exists():
        return {}
    try:
        saved = parse_document(path.read_text(errors="replace")[:65536], str(path))
    except GraphError:
        raise ValueError(f"{path} is not readable settings: fix or delete it to resume with the defaults") from None
    saved = saved.get("settings") if isinstance(saved, dict) else None
    if not isinstance(saved, dict):
        raise ValueError(f"{path} is not readable settings: fix or delete it to resume with the defaults")
    settings = {}
    for key, default in SETTINGS_DEFAULTS.items():
        value = saved.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value) and 0 <= value <= 10**9 and (isinstance(default, float) or value == int(value)):
            settings[key] = type(default)(value)
    settings["threads"] = max(settings.get("threads", 1), 1)
    return settings


def resolved_settings(args: argparse.Namespace, saved: dict[str, Any]) -> dict[str, Any]:
    """Command-line flags, else what the resumed run saved, else the defaults."""
    given = {"threads": args.threads, "checkpoint_every": args.checkpoint_every,
             "checkpoint_interval_s": args.checkpoint_interval}
    return {key: given[key] if given[key] is not None else saved.get(key, default)
            for key, default in SETTINGS_DEFAULTS.items()}


def _fields(values: dict[str, Any]) -> list[str]:
    """``name value`` for each summary field that has a value, floats to one decimal."""
    return [f"{name} {value:.1f}" if isinstance(value, float) else f"{name} {value}"
            for name, value in values.items() if value is not None]


def report(result: RunResult, run_dir: Path, checkpoint_error: str | None = None) -> int:
    """Print how the run ended (and, when solved, where the goal was reached) and map it to an exit code."""
    reached = "" if result.solved_at is None else f" (goal reached at {', '.join(_fields(result.solved_at))})"
    print(f"stopped: {result.stop_reason}{' (solved)' if result.solved else ''} after {result.wall_time_s:.1f}s"
          + "".join(f", {field}" for field in _fields(result.summary_fields)) + reached
          + printable(f"; run directory {run_dir}"), file=sys.stderr)
    if checkpoint_error is not None:
        print(f"error: {checkpoint_error}", file=sys.stderr)
    if result.error is not None:
        print(f"error: {result.error}", file=sys.stderr)
        if result.error.phase == "setup" and isinstance(result.error.cause, (ValueError, ImportError)):
            return EXIT_BAD_INPUT
        return EXIT_FAILED
    if checkpoint_error is not None:
        return EXIT_FAILED
    if result.stop_reason == "interrupted":
        return EXIT_INTERRUPTED
    return EXIT_OK

