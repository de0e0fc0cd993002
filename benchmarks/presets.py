"""Env steps and wall time to each classic-control preset's target return, over seeds: the table of
``docs/presets.md``.

Run: ``python benchmarks/presets.py`` (acrobot, mountaincar, pendulum, invertedpendulum, lunarlander; seeds 1-3);
``--presets acrobot --seeds 1`` for a quick look; ``--jobs N`` runs N at once. Each run is one fresh process,
``nice -n 5 dnne run --preset NAME --seed S -q`` with its own run directory under a temporary folder and
``--timeout`` as a wall cap (the preset's own ``max_steps`` still applies); its ``summary.json`` says whether it
reached the target, and ``solved_at`` after how many env steps and seconds. The runs are ordered seed by seed, presets interleaved, so load
changes spread over all presets. Wall times depend on the machine's load (printed at the start and the end); env
steps to the target do not.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import REPO, machine, markdown_table

CLASSIC = ("acrobot", "mountaincar", "pendulum", "invertedpendulum", "lunarlander")


def target(preset: str) -> float:
    """The preset's target return, from its graph file."""
    document = json.loads((REPO / "graphs" / "presets" / f"{preset}.json").read_text())
    return float(document["run"]["target_return"])


def measure(preset: str, seed: int, cap: str) -> dict[str, Any]:
    """One run of ``preset`` with ``seed``: its summary (solved, env steps, wall time) and the process's exit code."""
    with tempfile.TemporaryDirectory(prefix=f"dnne-preset-{preset}-") as tmp:
        run_dir = Path(tmp) / "run"
        command = ["nice", "-n", "5", shutil.which("dnne") or "dnne", "run", "--preset", preset, "--seed", str(seed),
                   "--run-dir", str(run_dir), "--timeout", cap, "-q"]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env)
        process_s = time.perf_counter() - started
        summary_path = run_dir / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    if done.returncode != 0:
        sys.stderr.write(f"{preset} seed {seed} exited {done.returncode}: {done.stderr[-2000:]}\n")
    at_goal = summary.get("solved_at") or summary  # where the target was reached; else how the run ended
    return {"preset": preset, "seed": seed, "exit_code": done.returncode, "process_s": process_s,
            "solved": bool(summary.get("solved")), "stop_reason": summary.get("stop_reason"),
            "env_steps": at_goal.get("env_steps"), "wall_time_s": at_goal.get("wall_time_s"),
            "mean_return": at_goal.get("mean_return")}


def cell(results: list[dict[str, Any]], key: str, unit: str) -> str:
    """One table cell: each seed's value at the target, or what it reached instead."""
    parts = []
    for r in results:
        if r["solved"]:
            value = r[key]
            parts.append(f"{value:,}" if key == "env_steps" else f"{value:.0f}{unit}")
        else:
            mean = "-" if r["mean_return"] is None else f"{r['mean_return']:.1f}"
            steps = "-" if r["env_steps"] is None else f"{r['env_steps']:,}"
            parts.append(f"not reached ({r['stop_reason']} at {steps} steps, mean return {mean})")
    return " / ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=list(CLASSIC))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--jobs", type=int, default=1, help="runs at once")
    parser.add_argument("--cap", default="60m", help="wall-time cap of one run (dnne --timeout)")
    args = parser.parse_args()
    print(f"machine: {machine()}\npresets {args.presets}, seeds {args.seeds}, {args.jobs} at once, cap {args.cap}\n",
          flush=True)
    order = [(preset, seed) for seed in args.seeds for preset in args.presets]
    def job(preset_seed: tuple[str, int]) -> dict[str, Any]:
        result = measure(*preset_seed, args.cap)
        print(json.dumps(result), flush=True)
        return result

    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(job, order))
    rows = []
    for preset in args.presets:
        mine = sorted((r for r in results if r["preset"] == preset), key=lambda r: r["seed"])
        rows.append((f"`{preset}.json`", f"{target(preset):g}", cell(mine, "env_steps", ""),
                     cell(mine, "wall_time_s", " s") if any(r["solved"] for r in mine) else "-"))
    print()
    print(markdown_table(("preset", "target return", "env steps to target (seeds " + ", ".join(map(str, args.seeds))
                          + ")", "wall time to target"), rows))
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
