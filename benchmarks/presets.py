"""Env steps and wall time to each classic-control preset's target return, over seeds: the table of
``docs/presets.md``.

Run: ``python benchmarks/presets.py`` (acrobot, mountaincar, pendulum, invertedpendulum, lunarlander; seeds 1-3);
``--presets acrobot --seeds 1`` for a quick look; ``--jobs N`` runs N at once. Each run is one fresh process,
``nice -n 5 dnne run --preset NAME --seed S -q`` (this interpreter's CLI, ``python -m dnne.runtime.cli``: no
activated environment needed) with its own run directory under a temporary folder and ``--timeout`` as a wall cap
(the preset's own ``max_steps`` still applies; ``common.run_to_target``); its ``summary.json`` says whether it
reached the target, and ``solved_at`` after how many env steps and seconds. The runs are ordered seed by seed, presets interleaved, so load
changes spread over all presets. Wall times depend on the machine's load (printed at the start and the end); env
steps to the target do not.
"""
from __future__ import annotations

import argparse
import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from common import REPO, machine, markdown_table, run_to_target, to_target_cell

CLASSIC = ("acrobot", "mountaincar", "pendulum", "invertedpendulum", "lunarlander")


def target(preset: str) -> float:
    """The preset's target return, from its graph file."""
    document = json.loads((REPO / "graphs" / "presets" / f"{preset}.json").read_text())
    return float(document["run"]["target_return"])


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
        preset, seed = preset_seed
        result = dict(run_to_target(["--preset", preset], seed, args.cap), preset=preset)
        print(json.dumps(result), flush=True)
        return result

    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(job, order))
    rows = []
    for preset in args.presets:
        mine = sorted((r for r in results if r["preset"] == preset), key=lambda r: r["seed"])
        rows.append((f"`{preset}.json`", f"{target(preset):g}", to_target_cell(mine, "env_steps", ""),
                     to_target_cell(mine, "wall_time_s", " s") if any(r["solved"] for r in mine) else "-"))
    print()
    print(markdown_table(("preset", "target return", "env steps to target (seeds " + ", ".join(map(str, args.seeds))
                          + ")", "wall time to target"), rows))
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
