"""The cost of a locomotion env step under several MuJoCo versions, the same code and tasks otherwise.

CleanRL's pinned environment steps its tasks with MuJoCo 2.3.3, this project's with the newest release, so a wall
time measured beside CleanRL includes the simulator's version. Each version other than the installed one is
installed once with ``pip install --no-deps --target CACHE/mujoco-VERSION`` and put first on ``PYTHONPATH`` of a
child process (``--child``, one thread); the child checks that it imported that version, builds ``--envs`` envs of
each task (Gymnasium's ``-v5`` classes, as the shipped graphs do), steps them with ``LocomotionBatch`` (the batched
step the graphs use) on uniform random actions drawn from a fixed seed after a warm-up of 100 steps, resets the envs
whose episode ended outside the timed region, and prints microseconds of CPU per env step. Random actions make short
episodes (Hopper and Walker2d fall within tens of steps), so the timed mix is mostly standing up and falling, not a
trained gait. Versions are interleaved per repeat; the table gives the median of the repeats and the ratio to the
installed version (to the last one listed when ``installed`` is not).

Usage: taskset -c 1 python benchmarks/mujoco_versions.py [--versions 2.3.3 3.3.0 3.3.1 installed] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import machine, markdown_table, median

TASKS = ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5")
WARM_UP = 100
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def child(tasks: list[str], num_envs: int, steps: int) -> dict[str, float]:
    """Microseconds of CPU per env step of each task, stepped as ``LocomotionBatch`` steps a batch."""
    import gymnasium
    import numpy as np

    from dnne.nodes.envs.locomotion_batch import LocomotionBatch

    result: dict[str, float] = {}
    for task in tasks:
        envs = [gymnasium.make(task).unwrapped for _ in range(num_envs)]
        for i, env in enumerate(envs):
            env.reset(seed=i)
        batch = LocomotionBatch.build(envs)
        if batch is None:
            raise ValueError(f"{task}: not a task LocomotionBatch steps")
        actions = np.random.default_rng(0).uniform(
            -1.0, 1.0, (WARM_UP + steps, num_envs, envs[0].action_space.shape[0]))
        observations = np.empty((num_envs, envs[0].observation_space.shape[0]))
        spent = 0.0
        for step in range(WARM_UP + steps):
            start = time.process_time()
            _, _, terminated = batch.step(actions[step], observations)
            if step >= WARM_UP:
                spent += time.process_time() - start
            for i in np.flatnonzero(terminated):
                envs[i].reset()
        result[task] = spent / (steps * num_envs) * 1e6
    return result


def mujoco_folder(version: str, cache: Path) -> Path | None:
    """The folder holding MuJoCo ``version`` (installed on first use), or None for the installed one."""
    if version == "installed":
        return None
    target = cache / f"mujoco-{version}"
    if not any(target.glob("mujoco-*.dist-info")):  # pip writes the dist-info last: a cut install has none
        done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--upgrade", "--target",
                               str(target), f"mujoco=={version}"], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"installing mujoco=={version} failed:\n{done.stderr[-3000:]}")
    return target


def measure(folder: Path | None, args: argparse.Namespace) -> tuple[str, dict[str, float]]:
    """One child run under ``folder``'s MuJoCo: the version it imported and its costs per task."""
    env = dict(os.environ, **ONE_THREAD)
    if folder is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, __file__, "--child", "--tasks", *args.tasks, "--envs", str(args.envs),
                           "--steps", str(args.steps)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the child under {folder or 'the installed MuJoCo'} failed:\n{done.stderr[-3000:]}")
    found, costs = json.loads(done.stdout.strip().splitlines()[-1])
    return found, costs


def main() -> None:
    """Measure every version, interleaved per repeat, and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", nargs="+", default=["2.3.3", "3.3.0", "3.3.1", "installed"])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--envs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2000, help="timed batch steps per task and repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/dnne-mujoco-versions"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import mujoco

        print(json.dumps([mujoco.__version__, child(args.tasks, args.envs, args.steps)]))
        return
    print(f"machine: {machine()}\n")
    folders = {version: mujoco_folder(version, args.cache) for version in args.versions}
    names: dict[str, str] = {}
    samples: dict[str, dict[str, list[float]]] = {v: {t: [] for t in args.tasks} for v in args.versions}
    for _ in range(args.repeats):
        for version in args.versions:
            names[version], costs = measure(folders[version], args)
            if version != "installed" and names[version] != version:
                raise RuntimeError(f"asked for MuJoCo {version}, the child imported {names[version]}")
            for task, cost in costs.items():
                samples[version][task].append(cost)
    reference = "installed" if "installed" in args.versions else args.versions[-1]
    rows = []
    for version in args.versions:
        for task in args.tasks:
            cost = median(samples[version][task])
            rows.append([names[version] + (" (installed)" if version == "installed" else ""), task, f"{cost:.1f}",
                         f"{cost / median(samples[reference][task]):.2f}"])
    print(markdown_table(["MuJoCo", "task", "us of CPU per env step", f"x {names[reference]}"], rows))


if __name__ == "__main__":
    main()
