"""Env steps per second of the built-in batched Cartpole against Gymnasium's vectorized CartPole-v1.

Run: ``python benchmarks/env_throughput.py`` (about two minutes). Random actions, torch on one thread, CPU only.
Prints a markdown table of env steps/s (num_envs x batched steps per second) and the speed-up of the built-in
``Cartpole`` at 4096 envs over the better of Gymnasium's sync and async vector envs at their best env count.
"""
from __future__ import annotations

import argparse
import time
from typing import Callable

import gymnasium
import numpy as np
import torch

from dnne.nodes.envs.cartpole import Cartpole

COUNTS = (1, 64, 1024, 4096)
# One worker process per env: on a 2-core machine more than 64 processes only measure process scheduling.
ASYNC_MAX_ENVS = 64


def measure(step: Callable[[], None], num_envs: int, seconds: float) -> float:
    """Env steps per second of ``step`` (one batched step of ``num_envs``), after a short warm-up."""
    for _ in range(5):
        step()
    calls = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        step()
        calls += 1
    return calls * num_envs / elapsed


def builtin_cartpole(num_envs: int, seconds: float) -> float:
    """Steps/s of ``dnne`` ``Cartpole`` with actions drawn by torch each step."""
    env = Cartpole(num_envs)
    env.reset(seed=0)
    generator = torch.Generator().manual_seed(0)
    return measure(lambda: env.step(torch.randint(0, 2, (num_envs,), generator=generator)), num_envs, seconds)


def gymnasium_cartpole(mode: str, num_envs: int, seconds: float) -> float:
    """Steps/s of ``gymnasium.make_vec("CartPole-v1", vectorization_mode=mode)`` with numpy random actions."""
    env = gymnasium.make_vec("CartPole-v1", num_envs, vectorization_mode=mode)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    try:
        return measure(lambda: env.step(rng.integers(0, 2, num_envs)), num_envs, seconds)
    finally:
        env.close()


def main() -> None:
    """Measure every row, print the table and the speed-up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per measurement")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows: dict[str, dict[int, float]] = {
        "dnne Cartpole (torch, batched)": {n: builtin_cartpole(n, args.seconds) for n in COUNTS},
        "Gymnasium SyncVectorEnv": {n: gymnasium_cartpole("sync", n, args.seconds) for n in COUNTS},
        "Gymnasium AsyncVectorEnv": {
            n: gymnasium_cartpole("async", n, args.seconds) for n in COUNTS if n <= ASYNC_MAX_ENVS
        },
        "Gymnasium CartPoleVectorEnv (numpy, reference)": {
            n: gymnasium_cartpole("vector_entry_point", n, args.seconds) for n in COUNTS
        },
    }
    print("| backend | " + " | ".join(f"{n} envs" for n in COUNTS) + " |")
    print("|---|" + "---:|" * len(COUNTS))
    for name, rates in rows.items():
        cells = [f"{rates[n]:,.0f}" if n in rates else "not run" for n in COUNTS]
        print(f"| {name} | " + " | ".join(cells) + " |")
    vectorized = ("Gymnasium SyncVectorEnv", "Gymnasium AsyncVectorEnv")
    best_name, best_count, best_rate = max(
        ((name, n, rate) for name in vectorized for n, rate in rows[name].items()), key=lambda row: row[2]
    )
    ours = rows["dnne Cartpole (torch, batched)"][4096]
    print(
        f"\nSpeed-up of dnne Cartpole at 4096 envs ({ours:,.0f} steps/s) over the best of sync/async "
        f"({best_name} at {best_count} envs, {best_rate:,.0f} steps/s): {ours / best_rate:.1f}x"
    )
    print(f"Async rows stop at {ASYNC_MAX_ENVS} envs: one process per env on this machine's cores.")


if __name__ == "__main__":
    main()
