"""``StepNode``: steps the environment when it holds actions and a trigger."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import torch

from dnne.runtime.node import Node
from dnne.runtime.ports import Input, Output, Param

from ..types import Dones, EnvHandle
from .episodes import EpisodeStats


class StepNode(Node):
    """Steps a batched environment once per (actions, trigger) pair.

    The ``trigger`` input holds one start token, so the actor-learner loop starts by itself; without a trigger
    link (play mode) the node steps whenever actions arrive. Outputs after action ``k`` are stamped ``k + 1``.
    Publishes ``env_steps`` (summed over envs) and the episode statistics (``mean_return`` of the last 20).
    """

    category = "envs"

    env_handle = Input("EnvHandle", "the environment to step", aliases=("sim_handle",))
    actions = Input("Tensor", "actions [num_envs, ...] for the current observations")
    trigger = Input("Trigger", "permission to step (from the trainer); primed with one token", optional=True,
                    primed=1)

    observations = Output("Tensor", "observations after the step, finished episodes already reset", offset=1)
    rewards = Output("Tensor", "rewards of the step [num_envs]", offset=1)
    dones = Output("Dones", "terminated, truncated and final observations; reads as a bool tensor", offset=1,
                   aliases=("done",))
    info = Output("Dict", "episode_returns and episode_lengths of the episodes that ended", offset=1)
    next_observations = Output("Tensor", "the true next states (final observations where episodes ended)",
                               offset=1)

    pace = Param(bool, False, "in play mode, step no faster than the env's dt and warn when falling behind")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._next_step_at: float | None = None
        self._behind = 0
        self._paced = False
        self._episodes: EpisodeStats | None = None

    async def setup(self) -> None:
        """Join the run's episode statistics (so a checkpoint restores them before the first step) and read whether
        to keep to real time."""
        self._episodes = EpisodeStats.of(self.ctx)
        self._paced = bool(self.pace or self.ctx.settings.get("realtime")) and self.ctx.mode == "play"

    async def compute(self, env_handle: EnvHandle, actions: torch.Tensor, trigger: Any = None) -> Mapping[str, Any]:
        """Step once and report the transition."""
        env = env_handle.env
        if self._paced and env.dt > 0:
            await self._pace(env.dt)
        result = env.step(actions)
        ctx = self.ctx
        ctx.counters.add("env_steps", env.num_envs)
        if len(result.episode_returns):  # the mask of ended episodes is for evaluations only
            assert self._episodes is not None
            ended = result.terminated | result.truncated if ctx.mode == "play" else None
            self._episodes.record(ctx, result.episode_returns, result.episode_lengths, ended)
        return {
            "observations": result.observations,
            "rewards": result.rewards,
            "dones": Dones(result.terminated, result.truncated, result.final_observations),
            "info": {"episode_returns": result.episode_returns, "episode_lengths": result.episode_lengths},
            "next_observations": result.final_observations,
        }

    async def _pace(self, dt: float) -> None:
        now = time.perf_counter()
        if self._next_step_at is None:
            self._next_step_at = now
        delay = self._next_step_at - now
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -dt:
            self._behind += 1
            if self._behind in (1, 10, 100) or self._behind % 1000 == 0:
                self.ctx.warn(f"falling behind real time by {-delay * 1000:.1f} ms ({self._behind} late steps)")
            self._next_step_at = now
        self._next_step_at += dt
