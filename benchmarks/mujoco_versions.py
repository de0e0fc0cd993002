"""The cost of a locomotion env step under several MuJoCo versions, the same code and tasks otherwise.

CleanRL's pinned environment steps its tasks with MuJoCo 2.3.3, this project's with the newest release, so a wall
time measured beside CleanRL includes the simulator's version. Each version other than the installed one is
installed once with ``pip install --no-deps --target CACHE/mujoco-VERSION`` and put first on ``PYTHONPATH`` of a
child process; the child builds ``--envs`` envs of each task (Gymnasium's ``-v5`` classes, as the shipped graphs
do), steps them with ``LocomotionBatch`` (the batched step the graphs use) on uniform random actions drawn from a
fixed seed, resets the envs whose episode ended outside the timed region, and prints microseconds of CPU per env
step. Versions are interleaved per repeat; the table gives the median of the repeats.

Usage: taskset -c 1 python benchmarks/mujoco_versions.py [--versions 2.3.3 3.3.0 3.3.1 installed] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import machine, markdown_table

TASKS = ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5")


def child(tasks: list[str], num_envs: int, steps: int) -> dict[str, float]:
    """Microseconds of CPU per env step of each task, stepped as ``LocomotionBatch`` steps a batch."""
    import gymnasium
    import numpy as np

    from dnne.nodes.envs.locomotion_batch import LocomotionBatch

    result = {}
    for task in tasks:
        envs = [gymnasium.make(task).unwrapped for _ in range(num_envs)]
        for i, env in enumerate(envs):
            env.reset(seed=i)
        batch = LocomotionBatch.build(envs)
        assert batch is not None, task
        actions = np.random.default_rng(0).uniform(-1.0, 1.0, (steps, num_envs, envs[0].action_space.shape[0]))
        observations = np.empty((num_envs, envs[0].observation_space.shape[0]))
        spent = 0.0
        for step in range(steps):
            start = time.process_time()
            _, _, terminated = batch.step(actions[step], observations)
            spent += time.process_time() - start
            for i in np.flatnonzero(terminated):
                envs[i].reset()
        result[task] = spent / (steps * num_envs) * 1e6
    return result


def site(version: str, cache: Path) -> Path | None:
    """The folder holding MuJoCo ``version`` (installed on first use), or None for the installed one."""
    if version == "installed":
        return None
    target = cache / f"mujoco-{version}"
    if not (target / "mujoco").is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                        f"mujoco=={version}"], check=True)
    return target


def measure(version: str, folder: Path | None, args: argparse.Namespace) -> tuple[str, dict[str, float]]:
    """One child run under ``folder``'s MuJoCo: its version string and its costs per task."""
    env = dict(os.environ)
    if folder is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder), env.get("PYTHONPATH")]))
    code = ("import json, sys, mujoco; sys.path.insert(0, sys.argv[1]); from mujoco_versions import child; "
            "print(json.dumps([mujoco.__version__, child(sys.argv[2].split(','), int(sys.argv[3]), int(sys.argv[4]))]))")
    done = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), ",".join(args.tasks),
                           str(args.envs), str(args.steps)], env=env, capture_output=True, text=True, check=True)
    found, costs = json.loads(done.stdout.strip().splitlines()[-1])
    return found, costs


def main() -> None:
    """Measure every version, interleaved per repeat, and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", nargs="+", default=["2.3.3", "3.3.0", "3.3.1", "installed"])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--envs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2000, help="batch steps per task and repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/dnne-mujoco-versions"))
    args = parser.parse_args()
    print(f"machine: {machine()}\n")
    folders = {version: site(version, args.cache) for version in args.versions}
    names: dict[str, str] = {}
    samples: dict[str, dict[str, list[float]]] = {v: {t: [] for t in args.tasks} for v in args.versions}
    for _ in range(args.repeats):
        for version in args.versions:
            names[version], costs = measure(version, folders[version], args)
            for task, cost in costs.items():
                samples[version][task].append(cost)
    reference = args.versions[-1]
    rows = []
    for version in args.versions:
        for task in args.tasks:
            cost = statistics.median(samples[version][task])
            rows.append([names[version] + (" (installed)" if version == "installed" else ""), task, f"{cost:.1f}",
                         f"{cost / statistics.median(samples[reference][task]):.2f}"])
    print(markdown_table(["MuJoCo", "task", "us of CPU per env step", f"x {names[reference]}"], rows))


if __name__ == "__main__":
    main()
