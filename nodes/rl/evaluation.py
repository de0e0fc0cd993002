"""Evaluation episodes on an environment of their own: every env runs a fixed quota of episodes, so a batch of envs
whose episodes differ in length is not biased toward the short ones."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from dnne.nodes.envs.base import BatchedEnv

from .actor_critic import ActorCritic


@dataclass(frozen=True)
class EvaluationResult:
    """The episodes of one evaluation, ordered by env then by finishing order within the env.

    Args:
        returns: each episode's undiscounted return.
        lengths: each episode's length in steps.
    """

    returns: list[float]
    lengths: list[int]

    def summary(self) -> dict[str, float]:
        """Mean and (population) standard deviation of the returns, mean length and the episode count."""
        count = len(self.returns)
        mean = sum(self.returns) / count
        std = math.sqrt(sum((r - mean) ** 2 for r in self.returns) / count)
        return {"eval_return_mean": mean, "eval_return_std": std,
                "eval_length_mean": sum(self.lengths) / count, "eval_episodes": float(count)}


def quotas(episodes: int, num_envs: int) -> list[int]:
    """How many episodes each env contributes: ``episodes`` split as evenly as possible, the first envs taking one
    more where it does not divide."""
    return [episodes // num_envs + (1 if index < episodes % num_envs else 0) for index in range(num_envs)]


def run_episodes(env: BatchedEnv, act: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], episodes: int,
                 seed: int, max_steps: int | None = None) -> EvaluationResult:
    """Reset ``env`` with ``seed`` and step it until every env has finished its quota of episodes.

    Counting the first ``episodes`` to finish would favour short episodes when envs differ (the envs that finish
    fast would fill the count); each env instead contributes its own quota (``quotas``) and the episodes it
    finishes beyond that are not counted.

    Args:
        env: a batched environment used by nothing else.
        act: ``(observations, ended) -> actions``; ``ended`` is the bool mask of envs whose episode just ended
            (all false at the first step), for a policy with memory to reset.
        episodes: how many episodes to count in all.
        seed: the reset seed.
        max_steps: stop after this many batched steps even if quotas are unfilled (``None``: no limit).

    Returns:
        The counted episodes, env by env.
    """
    num_envs = env.num_envs
    wanted = quotas(episodes, num_envs)
    observations = env.reset(seed=seed)
    returns = torch.zeros(num_envs, dtype=torch.float64)
    lengths = torch.zeros(num_envs, dtype=torch.long)
    ended = torch.zeros(num_envs, dtype=torch.bool)
    finished: list[list[tuple[float, int]]] = [[] for _ in range(num_envs)]
    steps = 0
    while any(len(done) < quota for done, quota in zip(finished, wanted)):
        if max_steps is not None and steps >= max_steps:
            break
        result = env.step(act(observations, ended))
        steps += 1
        returns += result.rewards.detach().to("cpu", torch.float64)
        lengths += 1
        ended = (result.terminated | result.truncated).detach().cpu()
        for index in ended.nonzero().flatten().tolist():
            if len(finished[index]) < wanted[index]:
                finished[index].append((float(returns[index]), int(lengths[index])))
        returns.masked_fill_(ended, 0.0)
        lengths.masked_fill_(ended, 0)
        observations = result.observations
    episodes_done = [episode for done in finished for episode in done]
    return EvaluationResult([r for r, _ in episodes_done], [n for _, n in episodes_done])


def policy_actor(network: ActorCritic, deterministic: bool, generator: torch.Generator,
                 transform: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor, torch.Tensor],
                                                                                   torch.Tensor]:
    """The ``act`` of ``run_episodes`` for ``network``: its state (if recurrent) kept per env and zeroed where an
    episode ended; ``transform`` maps the network's actions onto the env's (an action node's work)."""
    device = network.critic_head.weight.device
    state: list[Any] = [None]

    def act(observations: torch.Tensor, ended: torch.Tensor) -> torch.Tensor:
        if network.recurrent:
            if state[0] is None:
                state[0] = network.initial_state(observations.shape[0])
            else:
                state[0] = state[0] * (~ended).to(device, state[0].dtype)[:, None]
        pixels = observations.dtype == torch.uint8
        observations = observations.to(device, torch.float32)
        if pixels:  # as the agent reads images
            observations = observations / 255.0
        result = network.act(observations, deterministic=deterministic, generator=generator, state=state[0])
        if network.recurrent:
            state[0] = result.next_state
        return transform(result.action)

    return act
