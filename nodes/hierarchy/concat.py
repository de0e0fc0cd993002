"""``SubgoalConcatNode``: appends the subgoal to each observation, the low level's input."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from dnne.runtime.node import Node
from dnne.runtime.ports import Input, Output

from ..envs.spaces import Box


class SubgoalConcatNode(Node):
    """``obs ++ subgoal`` for every observation: what a goal-conditioned low-level agent acts on.

    Declares the joined ``observation_space`` (so the agent sizes itself) and passes on the env's
    ``action_space``, both read upstream at setup.
    """

    category = "hierarchy"
    declares = ("observation_space", "action_space")

    observations = Input("Tensor", "env observations [num_envs, obs_dim], stamped k")
    subgoals = Input("Tensor", "the subgoal held for observation k [num_envs, d], stamped k")
    conditioned = Output("Tensor", "observations with the subgoal appended [num_envs, obs_dim + d]")

    async def setup(self) -> None:
        """Declare the joined observation space and the env's action space."""
        obs_space = self.upstream("observation_space", "observations")
        goal_space = self.upstream("subgoal_space", "subgoals")
        if isinstance(obs_space, Box) and isinstance(goal_space, Box):
            self.declare("observation_space", Box(torch.cat((obs_space.low, goal_space.low.to(obs_space.low.dtype))),
                                                  torch.cat((obs_space.high,
                                                             goal_space.high.to(obs_space.high.dtype)))))
        action_space = self.upstream("action_space", "observations")
        if action_space is not None:
            self.declare("action_space", action_space)

    async def compute(self, observations: torch.Tensor, subgoals: torch.Tensor) -> Mapping[str, Any]:
        """Join one batch."""
        return {"conditioned": torch.cat((observations, subgoals.to(observations.dtype)), dim=-1)}
