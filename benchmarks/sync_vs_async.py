"""Sync against async PPO on the HalfCheetah graph: env steps per second and returns at equal env steps.

Each run is `dnne run graphs/halfcheetah_ppo.json` in its own process (both cores available, torch on one thread
per process as the CLI sets), for a fixed env-step budget, sync and async alternating per seed. Steps per second
are env steps over the training wall time in summary.json (start-up excluded); the return is the mean of the last
20 episodes at the end of the budget.

Usage: python benchmarks/sync_vs_async.py [--steps 50000] [--seeds 1 2 3]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import REPO, machine

GRAPH = REPO / "graphs" / "halfcheetah_ppo.json"


def run(mode: str, seed: int, steps: int) -> dict[str, float]:
    """One training run; its steps per second and final mean return."""
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [sys.executable, "-m", "dnne.runtime.cli", "run", str(GRAPH), "--seed", str(seed), "--max-steps",
             str(steps), "--set", f"trainer.mode={mode}", "--set", "run.target_return=null", "--run-dir", tmp, "-q"],
            capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        summary = json.loads((Path(tmp) / "summary.json").read_text())
    return {"steps_per_s": summary["env_steps"] / summary["wall_time_s"], "mean_return": summary["mean_return"]}


def main() -> None:
    """Run every seed in both modes and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    print(f"machine: {machine()}\n")
    results: dict[str, list[dict[str, float]]] = {"sync": [], "async": []}
    for seed in args.seeds:
        for mode in ("sync", "async"):
            results[mode].append(run(mode, seed, args.steps))
    print(f"| mode | env steps/s per seed | median | final mean_return per seed ({args.steps} steps) |")
    print("|---|---|---|---|")
    for mode, rows in results.items():
        rates = [r["steps_per_s"] for r in rows]
        returns = [r["mean_return"] for r in rows]
        print(f"| {mode} | {', '.join(f'{x:,.0f}' for x in rates)} | {statistics.median(rates):,.0f} | "
              f"{', '.join(f'{x:.0f}' for x in returns)} |")
    ratio = statistics.median(r["steps_per_s"] for r in results["async"]) / statistics.median(
        r["steps_per_s"] for r in results["sync"])
    low, high = min(r["mean_return"] for r in results["sync"]), max(r["mean_return"] for r in results["sync"])
    inside = sum(low <= r["mean_return"] <= high for r in results["async"])
    print(f"\nasync / sync env steps per second (median): {ratio:.2f}x (target >= 1.3x); async final returns inside "
          f"sync's {len(args.seeds)}-seed range [{low:.0f}, {high:.0f}]: {inside}/{len(args.seeds)}")


if __name__ == "__main__":
    main()
