"""Success rate on the PointMassMaze U-maze after the same env-step budget: hierarchical PPO against flat PPO.

Run: ``python benchmarks/hierarchical.py`` (seeds 1-3, each graph's own budget of 1M env steps; about 5 CPU-minutes,
so 5-25 minutes of wall time on two cores depending on the load). ``--seeds 1 --max-steps 300000`` for a quick look;
``--sides flat`` runs one side only.

For every seed, ``graphs/hierarchical_maze_ppo.json`` and ``graphs/flat_maze_ppo.json`` run side by side, each as
``dnne run GRAPH --seed S --threads 1 --set run.target_return=null --timeout 3h`` in its own process
(``OMP_NUM_THREADS=1``): the graph file as it is, except that the run stops neither on ``target_return`` nor on the
file's wall-clock ``timeout`` (a loaded machine must not cut a run short), so both sides get the same budget. Both files have the same env count (256), network size, learning rate and ``max_steps``. The success rate
of a run is read from its ``metrics.jsonl``: the ``EpisodeSuccessNode`` rows (the share of episodes that reached
the goal, per 50,000 env steps) of the last 20 % of the budget (200,000 env steps), pooled (successes over
episodes). The episodes are those of the training policy, sampling its actions. Targets: hierarchical >= 80 %,
flat <= 20 %. A window shorter than an episode's 600 steps x 256 envs would be biased: a successful episode ends
early, a failed one only at step 600, and the envs' failures end together. So the learning curve uses the same
trailing 200,000-step window at every row, and "first at >= 80 %" is the first row where that window reaches 80 %.

Prints one row per run (success rate, episodes counted, first at >= 80 %, wall and CPU time), the mean per side,
and writes the learning-curve picture (``--plot``, default ``docs/img/hierarchical_maze.png``; needs matplotlib).
``--json`` keeps the results; ``--from-json`` prints the tables and draws the picture again from such a file.

First it measures why (``--exploration-only`` stops there; under a minute of CPU): the share of 4096 episodes of
the same task (seed 0) that reach the goal with no learning at all, for the two ways of exploring. Flat: Gaussian actions,
std 1 (what the flat agent starts with). Random subgoals: every 20 steps a subgoal ``p + 4 clamp(N(0, I), -1, 1)``
(what the untrained high level sends through ``SubgoalNode``), reached by a hand-written low level
``a = clamp(2 (subgoal - p) - v, -1, 1)`` (standing in for a low level that has learned its job).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REPO, machine, markdown_table

GRAPHS = {"hierarchical": REPO / "graphs" / "hierarchical_maze_ppo.json",
          "flat": REPO / "graphs" / "flat_maze_ppo.json"}
WINDOW = 200_000  # env steps: success rates are pooled over the episodes that ended in a trailing window this long
TARGETS = {"hierarchical": (">=", 0.8), "flat": ("<=", 0.2)}


def success_rows(run_dir: Path) -> list[tuple[float, float, int]]:
    """``(env_steps, success_rate, episodes)`` of every EpisodeSuccessNode row of a run."""
    rows = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line) if line.strip() else {}
        if "success_episodes" in row:
            rows.append((float(row["env_steps"]), float(row["success_rate"]), int(row["success_episodes"])))
    return rows


def pooled(rows: list[tuple[float, float, int]], end: float) -> tuple[float, int]:
    """Successes over episodes, pooled over the rows recorded in the ``WINDOW`` env steps up to ``end``.

    Env-step counts are rounded to 10,000 first: a row is stamped a few hundred steps past the end of its interval
    (the counter runs a step or two ahead), which must not move it across the window's edge.
    """
    end = round(end, -4)
    last = [(rate, count) for steps, rate, count in rows if end - WINDOW < round(steps, -4) <= end]
    episodes = sum(count for _, count in last)
    if not episodes:
        return float("nan"), 0
    return sum(rate * count for rate, count in last) / episodes, episodes


def trailing_curve(rows: list[tuple[float, float, int]]) -> list[tuple[float, float]]:
    """``(env_steps, pooled rate of the trailing window)`` at every row from ``WINDOW`` env steps on."""
    return [(steps, pooled(rows, steps)[0]) for steps, _, _ in rows if steps >= WINDOW]


def start(side: str, seed: int, max_steps: int | None, run_dir: Path) -> tuple[subprocess.Popen[bytes], float]:
    """Start one ``dnne run`` of ``side``'s graph."""
    command = [sys.executable, "-m", "dnne.runtime.cli", "run", str(GRAPHS[side]), "--seed", str(seed),
               "--run-dir", str(run_dir), "-q", "--threads", "1", "--set", "run.target_return=null",
               "--timeout", "3h"]
    if max_steps is not None:
        command += ["--max-steps", str(max_steps)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(command, env=env, cwd=REPO), time.perf_counter()


def wait_all(running: dict[int, tuple[subprocess.Popen[bytes], float]]) -> dict[int, tuple[float, float]]:
    """Wait for every run: per process id, its wall time (taken when it ends) and its CPU time (user + system, from
    ``wait4``)."""
    times = {}
    while len(times) < len(running):
        pid, status, usage = os.wait4(-1, 0)
        if pid not in running:
            continue
        process, started = running[pid]
        times[pid] = (time.perf_counter() - started, usage.ru_utime + usage.ru_stime)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
    return times


def measure(seeds: list[int], sides: list[str], max_steps: int | None, scratch: Path) -> list[dict[str, Any]]:
    """Run the graphs of ``sides`` for every seed, the sides of a seed at the same time."""
    results = []
    for seed in seeds:
        runs = {side: (scratch / f"{side}-{seed}") for side in sides}
        running = {}
        for side, run_dir in runs.items():
            process, started = start(side, seed, max_steps, run_dir)
            running[process.pid] = (process, started)
        times = wait_all(running)
        for (side, run_dir), pid in zip(runs.items(), running):
            wall, cpu = times[pid]
            summary = json.loads((run_dir / "summary.json").read_text())
            result = {"side": side, "seed": seed, "env_steps": summary["env_steps"], "wall_s": wall, "cpu_s": cpu,
                      "curve": success_rows(run_dir)}
            results.append(result)
            rate, episodes, _ = score(result)
            print(f"{side} seed {seed}: success {rate:.3f} over {episodes} episodes, {wall:.0f} s wall, "
                  f"{cpu:.0f} s CPU", file=sys.stderr, flush=True)
    return results


def score(result: dict[str, Any]) -> tuple[float, int, float | None]:
    """A run's success rate and episode count over the last ``WINDOW`` env steps, and the first env-step count at
    which the trailing window reached 80 % (``None``: never)."""
    rows = [(steps, rate, count) for steps, rate, count in result["curve"]]
    rate, episodes = pooled(rows, result["env_steps"])
    first = next((steps for steps, r in trailing_curve(rows) if r >= 0.8), None)
    return rate, episodes, first


def exploration(episodes: int = 4096, interval: int = 20, scale: float = 4.0) -> dict[str, float]:
    """The share of episodes that reach the goal without learning: flat random actions, random subgoals."""
    import torch

    from dnne.nodes.envs.point_maze import PointMassMaze

    shares = {}
    for name in ("flat Gaussian actions (std 1)", f"random subgoals every {interval} steps + reaching controller"):
        env = PointMassMaze(episodes)
        generator = torch.Generator().manual_seed(0)
        observations = env.reset(seed=0)
        reached = torch.zeros(episodes, dtype=torch.bool)
        running = torch.ones(episodes, dtype=torch.bool)
        target = observations[:, :2]
        for t in range(env.max_episode_steps):
            noise = torch.randn((episodes, 2), generator=generator)
            if name.startswith("flat"):
                actions = noise
            else:
                if t % interval == 0:
                    target = observations[:, :2] + scale * noise.clamp(-1.0, 1.0)
                actions = (2.0 * (target - observations[:, :2]) - observations[:, 2:]).clamp(-1.0, 1.0)
            result = env.step(actions)
            observations = result.observations
            reached |= running & result.terminated
            running &= ~(result.terminated | result.truncated)
        shares[name] = reached.float().mean().item()
    return shares


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """The trailing-window success rate against env steps, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"hierarchical": "tab:blue", "flat": "tab:orange"}
    figure, axes = plt.subplots(figsize=(7, 4))
    for result in results:
        curve = trailing_curve([(s, r, n) for s, r, n in result["curve"]])
        steps = [s / 1e6 for s, _ in curve]
        rates = [r for _, r in curve]
        axes.plot(steps, rates, color=colours[result["side"]], alpha=0.8,
                  label=f"{result['side']}, seed {result['seed']}", marker=".")
    axes.axhline(0.8, color="grey", linestyle="--", linewidth=0.8)
    axes.axhline(0.2, color="grey", linestyle=":", linewidth=0.8)
    axes.set_xlabel("env steps (millions)")
    axes.set_ylabel("success rate (episodes of the last 200k env steps)")
    axes.set_ylim(-0.03, 1.03)
    axes.set_title("PointMassMaze U-maze: hierarchical vs flat PPO")
    axes.legend(fontsize=7, loc="center right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def main() -> None:
    """Measure, print the tables, draw the curves."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--sides", nargs="+", choices=list(GRAPHS), default=list(GRAPHS), help="graphs to run")
    parser.add_argument("--max-steps", type=int, default=None, help="budget; default: the graphs' max_steps")
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "img" / "hierarchical_maze.png")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--exploration-only", action="store_true", help="only the no-learning exploration table")
    parser.add_argument("--no-exploration", action="store_true", help="skip the no-learning exploration table")
    parser.add_argument("--from-json", type=Path, default=None, help="tables and picture from a --json file")
    args = parser.parse_args()
    if args.from_json is not None:
        results = json.loads(args.from_json.read_text())
    else:
        print(machine())
        if not args.no_exploration:
            print(markdown_table(["exploration without learning (4096 episodes of 600 steps, seed 0)",
                                  "reach the goal"],
                                 [[name, f"{share:.2%}"] for name, share in exploration().items()]))
            print()
        if args.exploration_only:
            return
        with tempfile.TemporaryDirectory(prefix="dnne-hier-") as scratch:
            results = measure(args.seeds, args.sides, args.max_steps, Path(scratch))
    rows = []
    for r in results:
        rate, episodes, first = score(r)
        r["success"] = rate
        rows.append([r["side"], r["seed"], f"{rate:.1%}", episodes, f"{r['env_steps']:,}",
                     f"{first:,.0f}" if first is not None else "never", f"{r['wall_s']:.0f}", f"{r['cpu_s']:.0f}"])
    print(markdown_table(["graph", "seed", "success rate (last 200k env steps)", "episodes counted",
                          "env steps", "first at >= 80 %", "wall s", "CPU s"], rows))
    print()
    summary = []
    for side, (relation, target) in TARGETS.items():
        rates = [r["success"] for r in results if r["side"] == side]
        if not rates:
            continue
        mean = sum(rates) / len(rates)
        met = all(rate >= target if relation == ">=" else rate <= target for rate in rates)
        summary.append([side, f"{mean:.1%}", f"{min(rates):.1%} - {max(rates):.1%}", f"{relation} {target:.0%}",
                        "met" if met else "NOT met"])
    print(markdown_table(["graph", "mean success rate", "range over seeds", "target (every seed)", ""], summary))
    if args.from_json is None:
        print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))
    try:
        plot(results, args.plot)
        print(f"learning curves: {args.plot}")
    except ImportError:
        print("matplotlib is not installed: no picture", file=sys.stderr)


if __name__ == "__main__":
    main()
