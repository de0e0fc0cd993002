"""Returns on ``PointMassNav`` (sparse reward) without learning: what ``graphs/hierarchical_ppo.json``'s target
(70) is measured against in ``docs/hierarchical.md``.

Run: ``python benchmarks/point_mass_nav.py`` (about ten seconds). The task as the graph sets it up (``reward: sparse``,
``goal_radius`` 1: a reward of 1 for every step within 1 of the goal, 100-step episodes), ``--episodes`` envs (3,072
by default) running one episode each from seed 0, under four policies: uniform random actions in ``[-1, 1]^2``,
Gaussian actions (std 1, clipped by the env), the zero action, and a hand-written controller that steers at the goal
and brakes, ``a = clamp(2 (goal - p) - v, -1, 1)`` (the reaching controller of ``hierarchical.py``, aimed at the goal
itself). Prints the mean return of the episodes and the share of episodes that score at all. The graph's own runs:
``examples.py``.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from common import machine, markdown_table

from dnne.nodes.envs.point_mass import PointMassNav

Policy = Callable[[torch.Tensor, torch.Generator], torch.Tensor]

POLICIES: dict[str, Policy] = {
    "uniform random actions in [-1, 1]^2": lambda obs, gen: torch.rand((obs.shape[0], 2), generator=gen) * 2 - 1,
    "Gaussian random actions (std 1)": lambda obs, gen: torch.randn((obs.shape[0], 2), generator=gen),
    "zero action": lambda obs, gen: torch.zeros((obs.shape[0], 2)),
    "controller: a = clamp(2 (goal - p) - v, -1, 1)": lambda obs, gen: (2.0 * obs[:, 4:6] - obs[:, 2:4]).clamp(-1, 1),
}
"""Each policy, from the observation ``[px, py, vx, vy, gx - px, gy - py]`` and a generator to an action."""


def episode_returns(policy: Policy, episodes: int) -> torch.Tensor:
    """The return of one episode in each of ``episodes`` envs under ``policy`` (seed 0)."""
    env = PointMassNav(episodes, reward="sparse", goal_radius=1.0)
    generator = torch.Generator().manual_seed(0)
    observations = env.reset(seed=0)
    returns = torch.zeros(episodes)
    for _ in range(env.max_episode_steps):
        result = env.step(policy(observations, generator))
        returns += result.rewards
        observations = result.observations
    return returns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=3072, help="episodes per policy (one per env)")
    args = parser.parse_args()
    print(f"machine: {machine()}\n")
    rows = []
    for name, policy in POLICIES.items():
        returns = episode_returns(policy, args.episodes)
        rows.append((name, args.episodes, f"{returns.mean().item():.1f}", f"{(returns > 0).float().mean().item():.0%}"))
    print(markdown_table(("policy on PointMassNav (sparse)", "episodes", "mean return", "episodes that score"), rows))


if __name__ == "__main__":
    main()
