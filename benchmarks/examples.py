"""Env steps to the target of the README's example graphs that no other benchmark runs: the "solves" column of the
README's table for them.

Run: ``python benchmarks/examples.py`` (about two minutes; ``--graphs hierarchical_ppo.json`` for one). Each run is
``common.run_to_target``: one fresh process, ``nice -n 5 dnne run GRAPH [ARGUMENTS] --seed S -q``, its own run
directory in a temporary folder; ``summary.json``'s ``solved_at`` gives the env steps, wall time and mean return at
which the run reached its target (the graph file's ``run.target_return``, or the one its arguments set). The main
job, the zoo preset and Pendulum are ``time_to_solve.py``'s, the presets ``presets.py``'s, the LSTM Cartpole graph
``recurrent.py``'s, the U-maze graphs ``hierarchical.py``'s, the MinAtar graph ``minatar_breakout.py``'s.
"""
from __future__ import annotations

import argparse
import json
import os

from common import REPO, machine, markdown_table, run_to_target, to_target_cell

from dnne.runtime.loading import load_graph

EXAMPLES: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {
    "gym_cartpole_ppo.json": ((), (1, 2, 3)),
    "dnne/cartpole_ppo.json": (("--max-steps", "100000", "--set", "run.target_return=450"), (1,)),
    "multi_env_ppo.json": ((), (1,)),
    "multi_env_ppo_procs.json": ((), (1,)),
    "multi_env_ppo_ray.json": ((), (1,)),
    "hierarchical_ppo.json": ((), (1, 2, 3)),
    "pendulum_novel_lstm.json": ((), (1,)),
}
"""Each example graph (under ``graphs/``): the arguments it runs with (the README's table quotes them) and its seeds."""


def target(graph: str, arguments: tuple[str, ...]) -> float:
    """The target return ``graph`` runs to with ``arguments`` (its ``--set`` overrides applied)."""
    overrides = [arguments[i + 1] for i, argument in enumerate(arguments) if argument == "--set"]
    return float(load_graph(REPO / "graphs" / graph, overrides=overrides).run["target_return"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--graphs", nargs="+", choices=list(EXAMPLES), default=list(EXAMPLES))
    parser.add_argument("--cap", default="10m", help="wall-time cap of one run (dnne --timeout)")
    args = parser.parse_args()
    print(f"machine: {machine()}\n", flush=True)
    rows = []
    for graph in args.graphs:
        arguments, seeds = EXAMPLES[graph]
        results = []
        for seed in seeds:
            result = run_to_target([f"graphs/{graph}", *arguments], seed, args.cap)
            print(json.dumps(dict(result, graph=graph)), flush=True)
            results.append(result)
        rows.append((f"`{graph}`", " ".join(arguments) or "-", f"{target(graph, arguments):g}",
                     ", ".join(map(str, seeds)), to_target_cell(results, "env_steps", ""),
                     to_target_cell(results, "wall_time_s", " s"),
                     " / ".join("-" if r["mean_return"] is None else f"{r['mean_return']:.1f}" for r in results)))
    print()
    print(markdown_table(("graph", "arguments", "target return", "seeds", "env steps to target",
                          "wall time to target (run)", "mean return there"), rows))
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
