"""MuJoCo locomotion: the shipped dnne graphs against CleanRL's unmodified ``ppo_continuous_action.py`` and SB3 PPO
with rl-baselines3-zoo's settings; return at the step budget (1M env steps), wall and CPU time, learning curves.

Three sides, each run in its own process on one thread (``OMP_NUM_THREADS=1``; the dnne CLI sets one torch thread
itself), interleaved seed by seed and task by task so machine load falls on all sides alike:

- **dnne**: ``dnne run graphs/<task>_ppo.json --seed S --max-steps N`` (Gymnasium ``-v5`` tasks); the return is the
  run's ``mean_return`` (the mean of its last 20 training episodes) and the curve its metrics rows. Beside it, the
  final policy's return: ``dnne play --stochastic --episodes 100`` of the run's last checkpoint, in which every env
  of the group plays an equal quota of fresh episodes: 100 episodes of one policy, where the window is 20, so it is
  the steadier of the two (the window is not biased by the envs side by side, only noisier; see
  ``benchmarks/README.md``, "Locomotion").
- **CleanRL**: ``cleanrl/ppo_continuous_action.py`` from the checkout named by ``--cleanrl`` (its public repository;
  the numbers in ``benchmarks/README.md`` used commit fe8d8a0), run as it is, with ``--env-id <Task>-v4 --seed S
  --total-timesteps N --no-cuda`` in its own environment (``--cleanrl-python``; ``--make-cleanrl-venv DIR`` builds one
  from CleanRL's pins). The return is the mean of the last 20 ``episodic_return`` lines it prints.
- **SB3**: ``python -m rl_zoo3.train --algo ppo --env <Task>-v4 --seed S -n N`` (rl-baselines3-zoo's own
  hyperparameters for the task, read by the zoo from its ``hyperparameters/ppo.yml``) in the environment of
  ``--sb3-python`` (``pip install torch==2.13.0 rl_zoo3 "gymnasium[mujoco]"``). The return is the mean of the last
  20 episodes of its Monitor file.

Wall time is spawn to exit; CPU time is the child's user + system time (``resource.getrusage``), which load inflates
much less. Every finished run is appended to ``OUT/results.jsonl`` (a run already there is not repeated, so a long
benchmark can be continued); the tables and ``OUT/curves.png`` are made from that file.

Usage: python benchmarks/locomotion.py --cleanrl CHECKOUT [--cleanrl-python PY] [--sb3-python PY]
       [--tasks halfcheetah hopper walker2d] [--seeds 1 2 3] [--steps 1000000] [--sides dnne cleanrl sb3] [--out DIR]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import CLEANRL_EPISODE, REPO, machine

TASKS = {"halfcheetah": "HalfCheetah", "hopper": "Hopper", "walker2d": "Walker2d", "ant": "Ant"}
SIDES = ("dnne", "cleanrl", "sb3")
WINDOW = 20
FINAL_EPISODES = 100
# CleanRL's pins (its pyproject.toml: gymnasium 0.29.1, mujoco <= 2.3.3); torch at the project's 2.13.0 (CPU wheel)
# instead of CleanRL's 2.4.1, which this machine's package index does not hold.
CLEANRL_PINS = ("torch==2.13.0", "gymnasium==0.29.1", "mujoco==2.3.3", "numpy<2", "tyro", "tensorboard", "imageio")


def one_thread() -> dict[str, str]:
    """The environment of a child process that computes on one thread."""
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def timed(command: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """Run ``command`` niced in ``cwd``; the completed process, wall seconds and the child's CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(["nice", "-n", "5", *command], cwd=cwd, env=one_thread(), capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if done.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done, wall, cpu


def run_dnne(task: str, seed: int, steps: int, tmp: Path) -> dict[str, Any]:
    """The shipped graph for ``task`` on ``seed``."""
    graph = REPO / "graphs" / f"{task}_ppo.json"
    _, wall, cpu = timed([sys.executable, "-m", "dnne.runtime.cli", "run", str(graph), "--seed", str(seed),
                          "--max-steps", str(steps), "--set", "run.target_return=null", "--run-dir", str(tmp / "run"),
                          "-q"], REPO)
    summary = json.loads((tmp / "run" / "summary.json").read_text())
    played, _, _ = timed([sys.executable, "-m", "dnne.runtime.cli", "play", str(tmp / "run" / "graph.json"),
                          "--checkpoint", str(tmp / "run"), "--episodes", str(FINAL_EPISODES), "--stochastic", "-q"],
                         REPO)
    rows = [json.loads(line) for line in (tmp / "run" / "metrics.jsonl").read_text().splitlines() if line.strip()]
    curve = [(row["env_steps"], row["mean_return"]) for row in rows
             if row.get("mean_return") is not None and row.get("env_steps") is not None]
    return {"return": summary["mean_return"], "final_return": json.loads(played.stdout)["mean_return"],
            "wall_s": wall, "cpu_s": cpu, "curve": curve}


def run_cleanrl(task: str, seed: int, steps: int, tmp: Path, checkout: Path, python: str) -> dict[str, Any]:
    """CleanRL's script, unmodified, on the ``-v4`` task."""
    script = checkout / "cleanrl" / "ppo_continuous_action.py"
    done, wall, cpu = timed([python, str(script), "--env-id", f"{TASKS[task]}-v4", "--seed", str(seed),
                             "--total-timesteps", str(steps), "--no-cuda"], tmp)
    episodes = [(int(step), float(ret)) for step, ret in CLEANRL_EPISODE.findall(done.stdout)]
    return {"return": _tail_mean([ret for _, ret in episodes]), "wall_s": wall, "cpu_s": cpu,
            "curve": _windowed(episodes)}


def run_sb3(task: str, seed: int, steps: int, tmp: Path, python: str) -> dict[str, Any]:
    """rl-baselines3-zoo's PPO settings for the ``-v4`` task, through the zoo's own training entry point."""
    _, wall, cpu = timed([python, "-m", "rl_zoo3.train", "--algo", "ppo", "--env", f"{TASKS[task]}-v4", "--seed",
                          str(seed), "-n", str(steps), "-f", str(tmp / "logs"), "--eval-freq", "-1",
                          "--save-freq", "-1", "--verbose", "0"], tmp)
    monitors = sorted((tmp / "logs").rglob("*.monitor.csv"))
    if not monitors:
        raise RuntimeError("rl_zoo3 wrote no Monitor file")
    episodes: list[tuple[int, float]] = []
    total = 0
    with monitors[0].open() as handle:
        handle.readline()  # the Monitor's JSON header line
        for row in csv.DictReader(handle):
            total += int(row["l"])
            episodes.append((total, float(row["r"])))
    return {"return": _tail_mean([ret for _, ret in episodes]), "wall_s": wall, "cpu_s": cpu,
            "curve": _windowed(episodes)}


def _tail_mean(returns: list[float]) -> float | None:
    return statistics.fmean(returns[-WINDOW:]) if returns else None


def _windowed(episodes: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """(env step, mean of the last ``WINDOW`` episodes) at each episode end: the curve dnne logs."""
    returns = [ret for _, ret in episodes]
    return [(step, statistics.fmean(returns[max(0, i + 1 - WINDOW):i + 1])) for i, (step, _) in enumerate(episodes)]


def make_cleanrl_venv(path: Path) -> None:
    """A virtual environment with CleanRL's pins at ``path``."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    subprocess.run([str(path / "bin" / "pip"), "install", "-q", *CLEANRL_PINS], check=True)


def load(results: Path) -> list[dict[str, Any]]:
    """Every run recorded so far."""
    if not results.exists():
        return []
    return [json.loads(line) for line in results.read_text().splitlines() if line.strip()]


def report(runs: list[dict[str, Any]], steps: int) -> None:
    """Markdown table per task: returns per seed and their median (and the final policy's, where measured), wall
    and CPU time, ratios to CleanRL."""
    print(f"| task | side | return at {steps:,} steps (seeds) | median | final policy, {FINAL_EPISODES} episodes "
          "(seeds) | median | wall s (seeds) | median wall s | median CPU s | load at start | wall / CleanRL's |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for task in TASKS:
        mine = [r for r in runs if r["task"] == task and r["steps"] == steps]
        if not mine:
            continue
        walls = {side: statistics.median(r["wall_s"] for r in mine if r["side"] == side)
                 for side in SIDES if any(r["side"] == side for r in mine)}
        for side in SIDES:
            rows = sorted((r for r in mine if r["side"] == side), key=lambda r: r["seed"])
            if not rows:
                continue
            ratio = f"{walls[side] / walls['cleanrl']:.3f}" if "cleanrl" in walls else "-"
            loads = ", ".join(f"{r['load']:.1f}" for r in rows)
            per_seed, median = _returns(rows, "return")
            final_seeds, final_median = _returns(rows, "final_return")
            wall_seeds = ", ".join(f"{r['wall_s']:.0f}" for r in rows)
            print(f"| {task} | {side} | {per_seed} | {median} | {final_seeds} | {final_median} | {wall_seeds} | "
                  f"{walls[side]:.0f} | {statistics.median(r['cpu_s'] for r in rows):.0f} | {loads} | {ratio} |")


def _returns(rows: list[dict[str, Any]], key: str) -> tuple[str, str]:
    """The runs' ``key`` per seed (``"4,734 (s1), ..."``; runs without it left out) and their median; ``-`` for both
    when no run has it."""
    measured = [r for r in rows if r.get(key) is not None]
    if not measured:
        return "-", "-"
    per_seed = ", ".join(f"{r[key]:,.0f} (s{r['seed']})" for r in measured)
    return per_seed, f"{statistics.median(r[key] for r in measured):,.0f}"


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    """Learning curves (mean of the last 20 episodes against env steps), one panel per task, one line per run."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [task for task in TASKS if any(r["task"] == task for r in runs)]
    if not tasks:
        return
    figure, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    colours = {"dnne": "tab:blue", "cleanrl": "tab:orange", "sb3": "tab:green"}
    for axis, task in zip(axes[0], tasks):
        for r in (r for r in runs if r["task"] == task):
            if r["curve"]:
                xs, ys = zip(*r["curve"])
                axis.plot(xs, ys, color=colours[r["side"]], alpha=0.8, label=f"{r['side']} s{r['seed']}")
        axis.set_title(TASKS[task])
        axis.set_xlabel("env steps")
        axis.set_ylabel(f"mean of last {WINDOW} episodes")
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> None:
    """Run what is missing from OUT/results.jsonl, interleaved, then print the tables and draw the curves."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cleanrl", type=Path, help="a checkout of github.com/vwxyzjn/cleanrl")
    parser.add_argument("--cleanrl-python", default=None, help="python of CleanRL's environment")
    parser.add_argument("--make-cleanrl-venv", type=Path, default=None, help="build CleanRL's environment here first")
    parser.add_argument("--sb3-python", default=None, help="python of an environment with rl_zoo3")
    parser.add_argument("--tasks", nargs="+", default=["halfcheetah", "hopper", "walker2d"], choices=tuple(TASKS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--sides", nargs="+", default=list(SIDES), choices=SIDES)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "dnne-locomotion")
    args = parser.parse_args()
    if args.make_cleanrl_venv is not None:
        make_cleanrl_venv(args.make_cleanrl_venv)
        args.cleanrl_python = args.cleanrl_python or str(args.make_cleanrl_venv / "bin" / "python")
    if "cleanrl" in args.sides and (args.cleanrl is None or args.cleanrl_python is None):
        parser.error("the cleanrl side needs --cleanrl CHECKOUT and --cleanrl-python (or --make-cleanrl-venv)")
    if "sb3" in args.sides and args.sb3_python is None:
        parser.error("the sb3 side needs --sb3-python")
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.jsonl"
    print(f"machine: {machine()}\n")
    done = {(r["task"], r["side"], r["seed"], r["steps"]) for r in load(results)}
    for seed in args.seeds:
        for task in args.tasks:
            for side in args.sides:
                if (task, side, seed, args.steps) in done:
                    continue
                load_avg = os.getloadavg()[0]
                with tempfile.TemporaryDirectory(dir=args.out) as scratch:
                    tmp = Path(scratch)
                    if side == "dnne":
                        row = run_dnne(task, seed, args.steps, tmp)
                    elif side == "cleanrl":
                        row = run_cleanrl(task, seed, args.steps, tmp, args.cleanrl.resolve(), args.cleanrl_python)
                    else:
                        row = run_sb3(task, seed, args.steps, tmp, args.sb3_python)
                row.update(task=task, side=side, seed=seed, steps=args.steps, load=load_avg)
                with results.open("a") as handle:
                    handle.write(json.dumps(row) + "\n")
                print(f"{task} {side} seed {seed}: return {row['return']}, {row['wall_s']:.0f} s wall, "
                      f"{row['cpu_s']:.0f} s CPU (load {load_avg:.1f})", flush=True)
    runs = load(results)
    report(runs, args.steps)
    plot([r for r in runs if r["steps"] == args.steps], args.out / "curves.png")


if __name__ == "__main__":
    main()
