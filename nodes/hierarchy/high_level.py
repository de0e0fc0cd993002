"""``HighLevelStepNode``: turns the env stream into the high level's stream, one step per ``interval`` env steps."""
from __future__ import annotations

import torch

from dnne.runtime.firing_rules import Every, Window
from dnne.runtime.node import Node
from dnne.runtime.ports import Input, Output, Param

from ..envs.spaces import Box
from ..types import Dones


class HighLevelStepNode(Node):
    """The high level's environment step: every ``interval`` env steps, one high-level transition.

    Reads every env observation ``k`` and the rewards and dones after each env step. The high-level observation
    ``j`` is env observation ``j * interval`` (stamped ``j``); the reward of high-level step ``j`` (stamped
    ``j + 1``, like a step node's outputs) is the sum of the env rewards over env steps ``j * interval`` to
    ``(j + 1) * interval - 1``. An episode that ends inside those steps ends the high-level step too: its rewards
    stop at the episode's end (what follows belongs to the next episode, whose first high-level decision is the next
    one), ``dones`` carries its terminated / truncated flag and its final observation, to bootstrap from. Declares
    ``action_space`` (the subgoal box ``[-1, 1]^subgoal_dim``) for the high-level agent, and ``subgoal_interval``
    for the subgoal and reward nodes. One env group (no fan-in); outputs carry no source. Nothing is checkpointed:
    a resumed run starts a new stream at observation 0, and a new window with it.

    Its inputs say it with firing rules: firing ``j`` takes observation ``j * interval`` (``Every``) and the
    rewards and dones of the ``interval`` env steps before it (``Window``; none for ``j = 0``).
    """

    category = "hierarchy"
    declares = ("action_space", "subgoal_interval")

    observations = Input("Tensor", "env observations [num_envs, obs_dim], every step k (stamped k); firing j takes "
                                   "k = j * interval", rule=Every("interval"))
    rewards = Input("Tensor", "env rewards after each step (stamped k + 1); firing j takes steps "
                              "(j - 1) * interval .. j * interval - 1", offset=1, rule=Window("interval"))
    dones = Input("Dones", "env episode ends after each step (stamped k + 1), windowed like rewards", offset=1,
                  rule=Window("interval"))

    high_observations = Output("Tensor", "env observation j * interval, stamped j: for the high-level agent")
    next_observations = Output("Tensor", "the high-level observation after step j, stamped j + 1: the trainer's "
                                         "states", offset=1)
    high_rewards = Output("Tensor", "summed env rewards of high-level step j, stamped j + 1", offset=1)
    high_dones = Output("Dones", "episode ends inside high-level step j, stamped j + 1", offset=1)

    interval = Param(int, 10, "env steps per high-level step", ge=1, le=1_000_000)
    subgoal_dim = Param(int, 2, "size of the high level's action (the subgoal)", ge=1, le=1 << 16)

    async def setup(self) -> None:
        """Declare the high level's action space and the interval."""
        ones = torch.ones(self.subgoal_dim)
        self.declare("action_space", Box(-ones, ones))
        self.declare("subgoal_interval", self.interval)

    async def compute(self, observations: torch.Tensor, rewards: tuple[torch.Tensor, ...],
                      dones: tuple[Dones, ...]) -> None:
        """High-level firing ``j``: the step that ends at ``observations`` (none for ``j = 0``), then the next
        high-level observation."""
        j = self.stamp
        assert j is not None, "HighLevelStepNode needs stamped inputs"
        if rewards:
            window = _Window(rewards[0], dones[0])
            for step_rewards, step_dones in zip(rewards, dones, strict=True):
                window.add(step_rewards, step_dones)
            await self.emit("high_rewards", window.rewards, j)
            await self.emit("high_dones", window.dones(observations), j)
            await self.emit("next_observations", observations, j)
        await self.emit("high_observations", observations, j)


class _Window:
    """Rewards and episode ends accumulated over one high-level step, per env."""

    def __init__(self, like_rewards: torch.Tensor, like_dones: Dones) -> None:
        self.rewards = torch.zeros_like(like_rewards)
        self.ended = torch.zeros_like(like_dones.terminated)
        self.terminated = torch.zeros_like(self.ended)
        self.truncated = torch.zeros_like(self.ended)
        self.final_observations = torch.zeros_like(like_dones.final_observations)

    def add(self, rewards: torch.Tensor, dones: Dones) -> None:
        """One env step: add the rewards of the envs whose episode has not ended in this window yet."""
        live = ~self.ended
        self.rewards = self.rewards + torch.where(live, rewards, torch.zeros_like(rewards))
        ending = live & (dones.terminated | dones.truncated)
        self.terminated = self.terminated | (ending & dones.terminated)
        self.truncated = self.truncated | (ending & dones.truncated & ~dones.terminated)
        self.final_observations = torch.where(ending[:, None], dones.final_observations, self.final_observations)
        self.ended = self.ended | ending

    def dones(self, observation: torch.Tensor) -> Dones:
        """The window's episode ends; where none ended, the final observation is ``observation`` (the next one)."""
        final = torch.where(self.ended[:, None], self.final_observations, observation)
        return Dones(self.terminated, self.truncated, final)
