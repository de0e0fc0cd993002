"""Recurrent PPO on CartpoleNoVel: steps and time to solve for the LSTM graph, the same graph with an MLP agent,
and sb3-contrib's RecurrentPPO with rl-zoo's settings, side by side in one run.

Run: ``python benchmarks/recurrent.py`` (seeds 1-3; ``--seeds 1`` for a quick look; ``--sides lstm mlp`` without
sb3-contrib). Long: start it with ``nohup ... &`` and read its output later.

Each measurement is one fresh process with ``OMP_NUM_THREADS=1`` and torch on one thread, timed from spawn to exit
(see ``time_to_solve.py``); the sides alternate within each seed. "Solved" means the mean return of the last 20
finished episodes reached 475 within 100k env steps.

* **lstm**: ``dnne run graphs/cartpole_novel_lstm.json --seed S`` as shipped.
* **mlp**: the same graph with ``--set agent.recurrent=none`` (the same encoder and heads, no memory).
* **sb3-contrib**: ``RecurrentPPO("MlpLstmPolicy")`` on Gymnasium's CartPole-v1 with the velocities removed from the
  observation (rl-zoo's CartPoleNoVel-v1), with rl-zoo's settings: n_envs 8, n_steps 32, batch_size 256,
  gae_lambda 0.8, gamma 0.98, n_epochs 20, ent_coef 0, learning_rate lin_1e-3, clip_range lin_0.2, observations
  normalised (VecNormalize, rewards not), policy_kwargs ortho_init False, ReLU, lstm_hidden_size 64,
  enable_critic_lstm True, net_arch pi [64] vf [64]; stopped by a callback at the same rule.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import machine, markdown_table, median
from time_to_solve import MARK, parse_result, spawn

GRAPH = "graphs/cartpole_novel_lstm.json"
TARGET = 475.0
BUDGET = 100_000
SIDES = ("lstm", "mlp", "sb3-contrib")


def sb3_worker(seed: int) -> None:
    """Train sb3-contrib's RecurrentPPO with rl-zoo's CartPoleNoVel-v1 settings; print the result line."""
    from collections import deque

    import gymnasium as gym
    import numpy as np
    import torch
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(1)

    class NoVelocity(gym.ObservationWrapper):
        """CartPole observing only cart position and pole angle."""

        def __init__(self, env: gym.Env) -> None:
            super().__init__(env)
            low, high = env.observation_space.low[[0, 2]], env.observation_space.high[[0, 2]]
            self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)

        def observation(self, observation: Any) -> Any:
            return observation[[0, 2]]

    class StopAtTarget(BaseCallback):
        """Stop when the mean of the last 20 finished episodes reaches the target (dnne's mean_return rule)."""

        def __init__(self) -> None:
            super().__init__()
            self.returns: deque[float] = deque(maxlen=20)
            self.solved = False

        def _on_step(self) -> bool:
            ended = False
            for info in self.locals["infos"]:
                if "episode" in info:
                    self.returns.append(float(info["episode"]["r"]))
                    ended = True
            if ended and sum(self.returns) / len(self.returns) >= TARGET:
                self.solved = True
                return False
            return True

    started = time.perf_counter()
    env = VecNormalize(make_vec_env("CartPole-v1", n_envs=8, seed=seed, wrapper_class=NoVelocity),
                       norm_obs=True, norm_reward=False)
    policy_kwargs = dict(ortho_init=False, activation_fn=torch.nn.ReLU, lstm_hidden_size=64,
                         enable_critic_lstm=True, net_arch=dict(pi=[64], vf=[64]))
    model = RecurrentPPO("MlpLstmPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                         ent_coef=0.0, learning_rate=lambda remaining: remaining * 1e-3,
                         clip_range=lambda remaining: remaining * 0.2, policy_kwargs=policy_kwargs, seed=seed,
                         device="cpu", verbose=0)
    callback = StopAtTarget()
    model.learn(total_timesteps=BUDGET, callback=callback)
    returns = callback.returns
    print(MARK + json.dumps({
        "stop_reason": "target_return" if callback.solved else "max_steps", "solved": callback.solved,
        "env_steps": int(model.num_timesteps), "wall_time_s": round(time.perf_counter() - started, 3),
        "mean_return": sum(returns) / len(returns) if returns else None}))


def run_side(side: str, seed: int, timeout: float) -> dict[str, Any]:
    """One process of ``side`` for ``seed``: its result, wall and CPU seconds."""
    if side == "sb3-contrib":
        seconds, cpu, stdout, code = spawn([sys.executable, str(Path(__file__).resolve()), "--sb3-worker",
                                            str(seed)], timeout)
        return dict(parse_result(stdout, None), process_s=seconds, cpu_s=cpu, exit_code=code)
    with tempfile.TemporaryDirectory(prefix="dnne-recurrent-") as tmp:
        run_dir = Path(tmp) / "run"
        command = [sys.executable, "-m", "dnne.runtime.cli", "run", GRAPH, "--seed", str(seed), "--run-dir",
                   str(run_dir), "--timeout", "2h"]
        if side == "mlp":
            command += ["--set", "agent.recurrent=none"]
        seconds, cpu, stdout, code = spawn(command, timeout)
        result = parse_result(stdout, run_dir)
    return dict(result, process_s=seconds, cpu_s=cpu, exit_code=code)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--sides", nargs="+", default=list(SIDES), choices=SIDES)
    parser.add_argument("--timeout", type=float, default=7200.0, help="seconds before one process is killed")
    parser.add_argument("--sb3-worker", type=int, metavar="SEED", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sb3_worker is not None:
        sb3_worker(args.sb3_worker)
        return
    print(f"machine: {machine()}\nseeds {args.seeds}, sides {args.sides}\n", flush=True)
    rows, results = [], {side: [] for side in args.sides}
    for seed in args.seeds:
        for side in args.sides:
            result = run_side(side, seed, args.timeout)
            results[side].append(result)
            steps, mean_return = result.get("env_steps"), result.get("mean_return")
            rows.append((seed, side, "yes" if result.get("solved") else "no", f"{steps:,}" if steps else "-",
                         "-" if mean_return is None else f"{mean_return:.1f}", f"{result['process_s']:.1f}",
                         f"{result['cpu_s']:.1f}"))
            print(f"  seed {seed} {side}: {rows[-1]}", flush=True)
    print()
    print(markdown_table(("seed", "side", "solved (475 within 100k steps)", "env steps", "final mean return",
                          "wall s", "CPU s"), rows))
    print()
    summary = []
    for side, side_results in results.items():
        solved = [r for r in side_results if r.get("solved")]
        summary.append((side, f"{len(solved)}/{len(side_results)}",
                        f"{median([r['env_steps'] for r in solved]):,.0f}" if solved else "-",
                        f"{median([r['process_s'] for r in side_results]):.1f}",
                        f"{median([r['cpu_s'] for r in side_results]):.1f}"))
    print(markdown_table(("side", "solved", "median env steps to solve", "median wall s", "median CPU s"), summary))


if __name__ == "__main__":
    main()
