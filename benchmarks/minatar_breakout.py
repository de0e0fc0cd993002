"""MinAtar Breakout: the return curve of ``graphs/minatar_breakout_ppo.json`` against a random policy's mean return,
measured in the same run. Needs the optional extra: ``pip install -e ".[minatar]"``. (Not named ``minatar.py``: the
script's folder comes first on ``sys.path`` and would hide the ``minatar`` package.)

Run: ``python benchmarks/minatar_breakout.py`` (seed 1, 400k env steps: ~10 min on 2 loaded cores); ``--seeds 1 2 3``,
``--steps N``, ``--random-episodes N``.

* **random**: uniform random actions (the game's 3 minimal actions) on ``MinAtar/Breakout-v1`` through the same
  Gymnasium backend, 64 envs, seed 0, each env playing the same number of whole games (``--random-episodes`` in all,
  rounded up); their mean return.
* **ppo**: ``dnne run graphs/minatar_breakout_ppo.json --seed S --max-steps N --set run.target_return=null`` (the
  whole budget, not stopping at the graph's target) in a fresh process with torch on one
  thread, timed from spawn to exit (wall and CPU). The curve is the trainer's ``mean_return`` (the last 20 finished
  games) from ``metrics.jsonl``; "final (last 5 updates)" averages its last five values. Then ``dnne eval`` plays
  ``--eval-episodes`` fresh games with the final policy (sampling its actions, as in training) for a steadier number.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REPO, machine, markdown_table

GRAPH = "graphs/minatar_breakout_ppo.json"
TASK = "MinAtar/Breakout-v1"


def random_mean_return(episodes: int, num_envs: int = 64) -> tuple[float, int]:
    """Mean return of uniform random actions, each of ``num_envs`` envs playing the same number of whole games (at
    least ``episodes`` in all), so short games are not over-counted; and how many games that was."""
    import torch
    from dnne.nodes.envs.gym_backend import GymnasiumEnv

    quota = math.ceil(episodes / num_envs)
    env = GymnasiumEnv(TASK, num_envs)
    env.reset(seed=0)
    generator = torch.Generator().manual_seed(0)
    played = torch.zeros(num_envs, dtype=torch.long)
    returns: list[float] = []
    while bool((played < quota).any()):
        result = env.step(torch.randint(0, env.action_space.n, (num_envs,), generator=generator))
        ended = torch.nonzero(result.terminated | result.truncated).flatten()
        for index, value in zip(ended.tolist(), result.episode_returns.tolist()):
            if played[index] < quota:
                returns.append(value)
            played[index] += 1
    env.close()
    return sum(returns) / len(returns), len(returns)


def spawn(command: list[str], timeout: float) -> tuple[float, float, str, int]:
    """Run ``command`` with one-thread settings: wall and CPU seconds from spawn to exit, stdout, exit code."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, check=False, capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        sys.stderr.write(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-3000:]}\n")
    return seconds, cpu, done.stdout + done.stderr, done.returncode


def curve(run_dir: Path) -> list[tuple[int, float]]:
    """``(env_steps, mean_return)`` of every trainer record that has a mean return."""
    points = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("node") == "trainer" and record.get("mean_return") is not None:
            points.append((int(record["env_steps"]), float(record["mean_return"])))
    return points


def evaluated_return(run_dir: Path, episodes: int, timeout: float) -> float | None:
    """The mean return ``dnne eval`` reports for the run's final policy over ``episodes`` fresh games."""
    command = [shutil.which("dnne") or "dnne", "eval", GRAPH, "--checkpoint", str(run_dir), "--episodes",
               str(episodes), "--stochastic", "--seed", "1000"]
    _, _, output, code = spawn(command, timeout)
    for line in reversed(output.splitlines()):
        if line.startswith("{") and '"mean_return"' in line:
            return json.loads(line)["mean_return"]
    sys.stderr.write(f"dnne eval (exit {code}) gave no mean return:\n{output[-2000:]}\n")
    return None


def run_seed(seed: int, steps: int, eval_episodes: int, timeout: float) -> dict[str, Any]:
    """One training process for ``seed``: its curve, summary, times and the evaluated return."""
    with tempfile.TemporaryDirectory(prefix="dnne-minatar-") as tmp:
        run_dir = Path(tmp) / "run"
        command = [shutil.which("dnne") or "dnne", "run", GRAPH, "--seed", str(seed), "--max-steps", str(steps),
                   "--timeout", "2h", "--set", "run.target_return=null", "--run-dir", str(run_dir), "-q"]
        wall, cpu, _, code = spawn(command, timeout)
        summary = json.loads((run_dir / "summary.json").read_text())
        points = curve(run_dir)
        evaluated = evaluated_return(run_dir, eval_episodes, timeout) if eval_episodes else None
    return {"seed": seed, "wall_s": wall, "cpu_s": cpu, "exit_code": code, "summary": summary, "curve": points,
            "evaluated": evaluated}


def curve_rows(results: list[dict[str, Any]], every: int) -> list[list[str]]:
    """The curves side by side: each seed's latest mean return at every ``every`` env steps."""
    last = max(point[0] for result in results for point in result["curve"])
    marks = list(range(every, last + 1, every))
    if not marks or marks[-1] != last:
        marks.append(last)
    rows = []
    for mark in marks:
        row = [f"{mark:,}"]
        for result in results:
            seen = [value for step, value in result["curve"] if step <= mark]
            row.append(f"{seen[-1]:.2f}" if seen else "-")
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--steps", type=int, default=400_000, help="env steps per training run")
    parser.add_argument("--random-episodes", type=int, default=2000)
    parser.add_argument("--eval-episodes", type=int, default=200, help="0: no dnne eval")
    parser.add_argument("--every", type=int, default=50_000, help="curve resolution in env steps")
    parser.add_argument("--timeout", type=float, default=7200.0, help="seconds per process")
    args = parser.parse_args()
    print(machine())
    started = time.perf_counter()
    random_return, random_games = random_mean_return(args.random_episodes)
    print(f"random policy: mean return {random_return:.3f} over {random_games} games "
          f"({time.perf_counter() - started:.1f} s)\n")
    results = [run_seed(seed, args.steps, args.eval_episodes, args.timeout) for seed in args.seeds]
    print(markdown_table(["env steps"] + [f"seed {r['seed']} mean return" for r in results],
                         curve_rows(results, args.every)))
    print()
    rows = []
    for result in results:
        values = [value for _, value in result["curve"]]
        final = sum(values[-5:]) / len(values[-5:]) if values else float("nan")
        evaluated = "-" if result["evaluated"] is None else f"{result['evaluated']:.2f}"
        rows.append([result["seed"], f"{result['summary'].get('env_steps', 0):,}", f"{final:.2f}", evaluated,
                     f"{random_return:.3f}", f"{result['wall_s']:.1f}", f"{result['cpu_s']:.1f}",
                     result["summary"].get("stop_reason")])
    print(markdown_table(["seed", "env steps", "final mean return (last 5 updates)",
                          f"eval mean return ({args.eval_episodes} games)", "random mean return", "wall s",
                          "CPU s", "stop"], rows))


if __name__ == "__main__":
    main()
