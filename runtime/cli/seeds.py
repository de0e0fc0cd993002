"""``dnne run --seeds 1 2 3``: the same graph once per seed, one after another or in ``--jobs`` processes, each in
its own run directory under one parent (``dnne plot PARENT`` draws them as one curve with a band)."""
from __future__ import annotations

import argparse
import copy
import multiprocessing
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .shared import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, timestamp


def run_seeds(args: argparse.Namespace, run_one: Callable[[argparse.Namespace], int]) -> int:
    """Run ``run_one`` once per seed of ``args.seeds`` with ``--run-dir PARENT/seed-N``; the worst exit code wins."""
    if args.resume or args.seed is not None:
        print("error: --seeds cannot be combined with --seed or --resume", file=sys.stderr)
        return EXIT_BAD_INPUT
    if len(set(args.seeds)) != len(args.seeds):
        print(f"error: --seeds repeats a seed: {args.seeds}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not args.file:
        print("error: dnne run --seeds needs a graph FILE", file=sys.stderr)
        return EXIT_BAD_INPUT
    parent = Path(args.run_dir) if args.run_dir else Path("runs") / f"{Path(args.file).stem}-{timestamp()}"
    jobs = []
    for seed in args.seeds:
        one = copy.copy(args)
        one.seeds, one.seed, one.run_dir = None, seed, str(parent / f"seed-{seed}")
        one.quiet = args.quiet or args.jobs > 1  # several progress displays at once would interleave
        jobs.append(one)
    if args.jobs <= 1:
        codes = []
        for one in jobs:
            print(f"seed {one.seed}: {one.run_dir}", file=sys.stderr, flush=True)
            codes.append(run_one(one))
            if codes[-1] == EXIT_INTERRUPTED:  # Ctrl-C stops the series, not just the current seed
                break
    else:
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            codes = list(pool.map(run_one, jobs))
    print(f"{len(jobs)} seeds in {parent}", file=sys.stderr)
    return worst(codes)


def worst(codes: list[int]) -> int:
    """One exit code for several runs: interrupted, then bad input, then failed, then ok."""
    for code in (EXIT_INTERRUPTED, EXIT_BAD_INPUT, EXIT_FAILED):
        if code in codes:
            return code
    return EXIT_OK if all(code == EXIT_OK for code in codes) else max(codes)
