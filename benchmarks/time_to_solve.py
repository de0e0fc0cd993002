"""Wall time to solve, spawn to exit: the dnne Cartpole and Pendulum graphs against Stable-Baselines3 PPO.

Run: ``python benchmarks/time_to_solve.py`` (seeds 1-5, both tasks: about ten minutes on an idle 2-core machine;
``--seeds 1`` for a quick look, ``--tasks cartpole``, ``--sides dnne SB3``). Long: start it with ``nohup ... &``.

Sides, run one after the other for each seed: ``dnne`` (the shipped graph, ``graphs/<task>_ppo.json``, tuned for
wall time), ``dnne zoo`` (``graphs/presets/cartpole_zoo.json``: SB3's zoo hyperparameters in a dnne graph, the
like-for-like comparison of the runtime against SB3's loop), ``SB3`` and, given a CleanRL checkout, ``CleanRL``.
CleanRL's scripts are written against Gymnasium 0.29's vector API (``final_info``); with the Gymnasium 1.x installed
here they neither report episodes nor handle the new autoreset step, so they run in their own environment with
CleanRL's pins (``--cleanrl-python``; ``benchmarks/locomotion.py --make-cleanrl-venv`` builds one).

Each measurement is one fresh process, pinned to one core (``taskset -c 0`` when available; ``--core``), with
``OMP_NUM_THREADS=1`` and torch on one thread, timed by this script from spawn to exit (imports, env and network
construction, training, teardown). "Outside training" is that wall time minus the time the run itself reports
(dnne: ``summary.json``'s ``wall_time_s``, setup to teardown; SB3: env construction to the end of ``learn``), i.e.
interpreter start, imports and exit. The CPU time of each process (user + system, from ``getrusage``) is reported
too: unlike wall time it does not grow when other processes share the core. For each side, the median wall and CPU
time over the seeds and its ratio to SB3's are reported.

* **dnne**, **dnne zoo**: ``dnne run GRAPH --seed S --run-dir TMP``, the ``dnne`` script of this interpreter's
  environment. The graph file is run as it is: its stop conditions (``target_return``, ``max_steps``, ``timeout``)
  apply.
* **SB3**: PPO with rl-baselines3-zoo's hyperparameters (below), stopped by a callback when the mean return of the
  last 20 finished training episodes (Monitor) reaches the target, the same rule as dnne's ``mean_return`` (the
  mean over the window, up to 20 episodes); otherwise it runs its full zoo budget (1e5 steps).
* **CleanRL**: its script unmodified with its defaults (Cartpole: ``cleanrl/ppo.py``, 4 envs x 128 steps, 4 epochs
  of 4 minibatches, lr 2.5e-4 annealed over 500k steps; Pendulum: ``cleanrl/ppo_continuous_action.py``, 1 env x
  2048 steps, annealed over 1M), ``--env-id`` and ``--seed`` set. This script reads the episodes it prints and stops
  it (SIGKILL) when the mean of its last 20 reaches the target, the rule above: its time is spawn to that line, with
  no teardown (the others' include their exit, about 0.1 s). Its own stop is its full budget.

Zoo CartPole-v1: n_envs 8, n_steps 32, batch_size 256, gae_lambda 0.8, gamma 0.98, n_epochs 20, ent_coef 0.0,
learning_rate lin_1e-3, clip_range lin_0.2, 1e5 steps, target 475. Zoo Pendulum-v1: n_envs 4, n_steps 1024,
gae_lambda 0.95, gamma 0.9, n_epochs 10, ent_coef 0.0, learning_rate 1e-3, clip_range 0.2, use_sde with
sde_sample_freq 4, 1e5 steps, target -250.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import CLEANRL_EPISODE, REPO, machine, markdown_table, median

MARK = "TIME_TO_SOLVE_RESULT "

TASKS: dict[str, dict[str, Any]] = {
    "cartpole": {
        "graphs": {"dnne": "graphs/cartpole_ppo.json", "dnne zoo": "graphs/presets/cartpole_zoo.json"}, "gym_id": "CartPole-v1", "target": 475.0,
        "cleanrl": "ppo.py",
        "sb3": dict(n_envs=8, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
                    learning_rate="lin_1e-3", clip_range="lin_0.2", n_timesteps=100_000),
    },
    "pendulum": {
        "graphs": {"dnne": "graphs/pendulum_ppo.json"}, "gym_id": "Pendulum-v1", "target": -250.0,
        "cleanrl": "ppo_continuous_action.py",
        "sb3": dict(n_envs=4, n_steps=1024, gae_lambda=0.95, gamma=0.9, n_epochs=10, ent_coef=0.0,
                    learning_rate=1e-3, clip_range=0.2, use_sde=True, sde_sample_freq=4, n_timesteps=100_000),
    },
}

# ---------------------------------------------------------------------------------------------------------------
# the SB3 side (runs in its own process: `python time_to_solve.py --sb3-worker TASK SEED`)
# ---------------------------------------------------------------------------------------------------------------
def sb3_worker(task: str, seed: int) -> None:
    """Train SB3 PPO with the zoo's hyperparameters until the target or the budget; print the result line."""
    started = time.perf_counter()
    from collections import deque

    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)
    spec = TASKS[task]
    hp = dict(spec["sb3"])
    n_envs, n_timesteps = hp.pop("n_envs"), hp.pop("n_timesteps")
    for key in ("learning_rate", "clip_range"):
        if isinstance(hp[key], str) and hp[key].startswith("lin_"):
            initial = float(hp[key][4:])
            hp[key] = lambda progress_remaining, initial=initial: progress_remaining * initial

    class StopAtTarget(BaseCallback):
        """Stop when the mean of the last 20 finished episodes reaches the target (dnne's mean_return rule)."""

        def __init__(self, target: float) -> None:
            super().__init__()
            self.target = target
            self.returns: deque[float] = deque(maxlen=20)
            self.solved = False

        def _on_step(self) -> bool:
            ended = False
            for info in self.locals["infos"]:
                episode = info.get("episode")
                if episode is not None:
                    self.returns.append(float(episode["r"]))
                    ended = True
            if ended and sum(self.returns) / len(self.returns) >= self.target:
                self.solved = True
                return False
            return True

    imported = time.perf_counter()
    env = make_vec_env(spec["gym_id"], n_envs=n_envs, seed=seed)
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **hp)
    callback = StopAtTarget(spec["target"])
    model.learn(total_timesteps=n_timesteps, callback=callback)
    returns = callback.returns
    print(MARK + json.dumps({
        "stop_reason": "target_return" if callback.solved else "max_steps", "solved": callback.solved,
        "env_steps": int(model.num_timesteps), "wall_time_s": round(time.perf_counter() - imported, 3),
        "import_s": round(imported - started, 3),
        "mean_return": sum(returns) / len(returns) if returns else None,
    }))


# ---------------------------------------------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------------------------------------------
CORE = "0"
DNNE = Path(sys.executable).parent / "dnne"
"""The ``dnne`` script of this interpreter's environment."""


def pinned(command: list[str]) -> list[str]:
    """``command`` pinned to core ``CORE`` when ``taskset`` exists."""
    return ["taskset", "-c", CORE, *command] if shutil.which("taskset") else command


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def spawn(command: list[str], timeout: float) -> tuple[float, float, str, int]:
    """Run ``command`` with one-thread settings: wall and CPU seconds from spawn to exit, stdout, exit code."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    cpu = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(pinned(command), capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)
    seconds = time.perf_counter() - started
    cpu = _children_cpu() - cpu
    if done.returncode not in (0,):
        sys.stderr.write(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-3000:]}\n")
    return seconds, cpu, done.stdout, done.returncode


def parse_result(stdout: str, run_dir: Path | None) -> dict[str, Any]:
    """The result line a worker printed, else the run directory's summary.json."""
    for line in stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    if run_dir is not None and (run_dir / "summary.json").exists():
        return json.loads((run_dir / "summary.json").read_text())
    return {"stop_reason": "unknown", "solved": False, "env_steps": None}


def run_dnne(graph: str, seed: int, timeout: float) -> dict[str, Any]:
    """One ``dnne run`` process on ``graph``: its wall time and result."""
    with tempfile.TemporaryDirectory(prefix="dnne-tts-") as tmp:
        run_dir = Path(tmp) / "run"
        command = [str(DNNE), "run", graph, "--seed", str(seed), "--run-dir", str(run_dir)]
        seconds, cpu, stdout, code = spawn(command, timeout)
        result = parse_result(stdout, run_dir)
    return dict(result, process_s=seconds, cpu_s=cpu, exit_code=code)


def run_sb3(task: str, seed: int, timeout: float) -> dict[str, Any]:
    """One SB3 process: its wall time and result."""
    seconds, cpu, stdout, code = spawn([sys.executable, str(Path(__file__).resolve()), "--sb3-worker", task,
                                        str(seed)], timeout)
    return dict(parse_result(stdout, None), process_s=seconds, cpu_s=cpu, exit_code=code)


def run_cleanrl(task: str, seed: int, timeout: float, checkout: Path, python: str) -> dict[str, Any]:
    """CleanRL's script for ``task``, stopped when the mean of its last 20 printed episodes reaches the target: wall
    and CPU time from spawn to that line, and the result."""
    script = checkout / "cleanrl" / TASKS[task]["cleanrl"]
    target = TASKS[task]["target"]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    command = [python, "-u", str(script), "--env-id", TASKS[task]["gym_id"], "--seed", str(seed)]
    returns: list[float] = []
    solved_at = None
    with tempfile.TemporaryDirectory(prefix="cleanrl-tts-") as tmp:  # it writes its runs/ folder where it starts
        cpu = _children_cpu()
        started = time.perf_counter()
        process = subprocess.Popen(pinned(command), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                   env=env, cwd=tmp)
        assert process.stdout is not None
        for line in process.stdout:
            match = CLEANRL_EPISODE.match(line)
            if match is not None:
                returns.append(float(match.group(2)))
                if sum(returns[-20:]) / len(returns[-20:]) >= target:
                    solved_at = int(match.group(1))
                    break
            if time.perf_counter() - started > timeout:
                break
        process.kill()
        code = process.wait()
        seconds = time.perf_counter() - started
        cpu = _children_cpu() - cpu
    window = returns[-20:]
    return {"solved": solved_at is not None, "env_steps": solved_at, "stop_reason": "target_return" if solved_at
            else "budget", "mean_return": sum(window) / len(window) if window else None, "process_s": seconds,
            "cpu_s": cpu, "exit_code": code}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["cartpole", "pendulum"], choices=list(TASKS),
                        help="tasks to measure")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--sides", nargs="+", default=["dnne", "dnne zoo", "SB3"],
                        choices=("dnne", "dnne zoo", "SB3", "CleanRL"),
                        help="what to run (a side a task has no graph for is skipped)")
    parser.add_argument("--cleanrl", type=Path, help="a checkout of github.com/vwxyzjn/cleanrl (the CleanRL side)")
    parser.add_argument("--cleanrl-python", default=None, help="python of an environment with CleanRL's pins")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds before one process is killed")
    parser.add_argument("--core", default="0", help="the core every process is pinned to")
    parser.add_argument("--sb3-worker", nargs=2, metavar=("TASK", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if "CleanRL" in args.sides and (args.cleanrl is None or args.cleanrl_python is None):
        parser.error("the CleanRL side needs --cleanrl and --cleanrl-python")
    if args.sb3_worker:
        sb3_worker(args.sb3_worker[0], int(args.sb3_worker[1]))
        return

    global CORE
    CORE = args.core
    print(f"machine: {machine()}")
    print(f"dnne side: {DNNE} run; "
          f"pinned: {f'taskset -c {CORE}' if shutil.which('taskset') else 'no taskset'}; seeds {args.seeds}\n",
          flush=True)
    per_seed, summary = [], []
    for task in args.tasks:
        graphs = TASKS[task]["graphs"]
        sides = [side for side in args.sides if side in ("SB3", "CleanRL") or side in graphs]
        for side in sides:
            if side in graphs:
                print(f"{task} {side}: {graphs[side]}, run section "
                      f"{json.loads((REPO / graphs[side]).read_text()).get('run', {})}", flush=True)
        walls: dict[str, list[float]] = {side: [] for side in sides}
        cpus: dict[str, list[float]] = {side: [] for side in sides}
        solved: dict[str, int] = {side: 0 for side in sides}
        for seed in args.seeds:
            for side in sides:
                if side == "SB3":
                    result = run_sb3(task, seed, args.timeout)
                elif side == "CleanRL":
                    result = run_cleanrl(task, seed, args.timeout, args.cleanrl, args.cleanrl_python)
                else:
                    result = run_dnne(graphs[side], seed, args.timeout)
                walls[side].append(result["process_s"])
                cpus[side].append(result["cpu_s"])
                solved[side] += bool(result.get("solved"))
                mean_return = result.get("mean_return")
                steps = result.get("env_steps") or 0
                inside = result.get("wall_time_s")
                per_seed.append((task, seed, side, f"{result['process_s']:.1f}", f"{result['cpu_s']:.1f}",
                                 "-" if inside is None else f"{result['process_s'] - inside:.1f}",
                                 "yes" if result.get("solved") else "no", f"{steps:,}",
                                 f"{steps / inside:,.0f}" if inside else "-", result.get("stop_reason"),
                                 "-" if mean_return is None else f"{mean_return:.1f}"))
                print(f"  seed {seed} {side}: {result['process_s']:.1f}s wall, {result['cpu_s']:.1f}s CPU, "
                      f"{result.get('stop_reason')}, {result.get('env_steps')} steps, mean return {mean_return}",
                      flush=True)
        n = len(args.seeds)
        reference = (median(walls["SB3"]), median(cpus["SB3"])) if "SB3" in sides else None
        for side in sides:
            wall, cpu = median(walls[side]), median(cpus[side])
            summary.append((task, side, f"{wall:.1f}", f"{cpu:.1f}", f"{solved[side]}/{n}",
                            f"{wall / reference[0]:.2f}" if reference else "-",
                            f"{cpu / reference[1]:.2f}" if reference else "-"))
    print()
    print(markdown_table(("task", "seed", "side", "wall s (spawn to exit)", "CPU s", "outside training s", "solved",
                          "env steps", "env steps/s in training", "stop reason", "final mean return"), per_seed))
    print()
    print(markdown_table(("task", "side", "median wall s", "median CPU s", "solved", "/ SB3 (wall)", "/ SB3 (CPU)"),
                         summary))


if __name__ == "__main__":
    main()
