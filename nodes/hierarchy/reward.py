"""``SubgoalRewardNode``: the low level's reward and episode ends: reach the subgoal held for each step."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from dnne.runtime.node import Node
from dnne.runtime.ports import Input, Output, Param

from ..types import Dones
from .subgoal import positions, resolve_interval


class SubgoalRewardNode(Node):
    """Rewards the low level for reaching its subgoal; each subgoal's ``interval`` steps are one low-level episode.

    For env step ``k`` (target ``t`` held for observation ``k``, true next observation ``o'`` with position ``p'``):
    reward ``-||p' - t|| / distance_scale``, plus ``success_bonus`` where ``||p' - t|| <= success_radius``.
    ``states`` is ``o' ++ (t - p')``: the low level's next observation under the same subgoal. ``dones``: an env
    episode end as it is (its final observation joined with ``t - p'``); otherwise a step that ends a subgoal (``k +
    1`` a multiple of ``interval``) is truncated, so the low level bootstraps from its value under the subgoal it
    was given, never across to the next one. Outputs are stamped ``k + 1``, like a step node's.
    """

    category = "hierarchy"

    targets = Input("Tensor", "target positions held for observation k [num_envs, d], stamped k")
    next_observations = Input("Tensor", "true next observations after step k (stamped k + 1)", offset=1)
    dones = Input("Dones", "env episode ends after step k (stamped k + 1)", offset=1)

    rewards = Output("Tensor", "subgoal-reaching rewards [num_envs]", offset=1)
    low_dones = Output("Dones", "env episode ends, and truncation where a subgoal ends", offset=1)
    states = Output("Tensor", "next observations with t - p' appended: the low-level trainer's states", offset=1)

    interval = Param(int, None, "env steps per subgoal; default: the HighLevelStepNode's", ge=1, le=1_000_000,
                     nullable=True)
    position_indices = Param(list, [0, 1], "observation components that hold the position", ge=0, le=1 << 20)
    distance_scale = Param(float, 1.0, "distance that costs 1 per step", gt=0.0, le=1e6)
    success_radius = Param(float, 0.0, "distance within which the subgoal counts as reached", ge=0.0, le=1e6)
    success_bonus = Param(float, 0.0, "reward added per step spent within success_radius", ge=-1e6, le=1e6)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.every = self.interval

    async def start(self) -> None:
        """Take the interval from the high level upstream unless set."""
        self.every = resolve_interval(self, self.interval, "targets")

    async def compute(self, targets: torch.Tensor, next_observations: torch.Tensor,
                      dones: Dones) -> Mapping[str, Any]:
        """Score one step."""
        assert self.stamp is not None, "SubgoalRewardNode needs stamped inputs"
        targets = targets.to(next_observations.dtype)
        to_target = targets - positions(next_observations, self.position_indices)
        distance = torch.linalg.vector_norm(to_target, dim=-1)
        rewards = -distance / self.distance_scale
        if self.success_bonus:
            rewards = rewards + self.success_bonus * (distance <= self.success_radius).to(rewards.dtype)
        states = torch.cat((next_observations, to_target), dim=-1)
        final = positions(dones.final_observations.to(targets.dtype), self.position_indices)
        final_observations = torch.cat((dones.final_observations.to(targets.dtype), targets - final), dim=-1)
        truncated = dones.truncated & ~dones.terminated
        if (self.stamp + 1) % self.every == 0:
            truncated = ~dones.terminated
        return {"rewards": rewards, "low_dones": Dones(dones.terminated, truncated, final_observations),
                "states": states}
