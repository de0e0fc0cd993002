"""``SubgoalNode``: holds the high level's current subgoal and hands it out with every env observation."""
from __future__ import annotations

from typing import Any

import torch

from dnne.runtime.firing_rules import Hold
from dnne.runtime.node import Node
from dnne.runtime.ports import Input, Output, Param

from ..envs.spaces import Box


def resolve_interval(node: Node, given: int | None, port: str) -> int:
    """The subgoal interval: the node's param, else the one declared upstream (``HighLevelStepNode``).

    Raises:
        ValueError: neither is set, or both are and they differ.
    """
    declared = node.upstream("subgoal_interval", port)
    if given is not None and declared is not None and given != declared:
        raise ValueError(f"interval is {given} but the high level upstream steps every {declared} env steps: "
                         f"remove interval or make it {declared}")
    interval = given if given is not None else declared
    if interval is None:
        raise ValueError("interval is not set and no HighLevelStepNode upstream declares it")
    return int(interval)


def positions(observations: torch.Tensor, indices: list[int]) -> torch.Tensor:
    """The position components ``[N, len(indices)]`` of a batch of observations."""
    if max(indices) >= observations.shape[-1]:
        raise ValueError(f"position_indices {indices} do not fit observations of size {observations.shape[-1]}")
    return observations[:, indices]


class SubgoalNode(Node):
    """Turns high-level decisions into subgoal positions and holds each for ``interval`` env steps.

    High-level decision ``j`` (an action in ``[-1, 1]^d``, clamped) becomes the target position of env steps
    ``j * interval`` to ``(j + 1) * interval - 1``: ``relative`` mode aims at ``p + scale * a`` from the position
    ``p`` at the decision (HIRO-style offsets), ``absolute`` at ``scale * a``; ``limit`` clamps targets to
    ``[-limit, limit]`` (the arena). For every env observation ``k`` it sends ``targets`` (the held target position)
    and ``relative`` (target minus the current position: what the low level is conditioned on), both stamped
    ``k``. Its ``subgoals`` input says so with a firing rule: decision ``j`` is held for the ``interval`` firings
    ``j * interval`` .. (``Hold``), so an observation that arrives before its decision waits for it. One env group;
    outputs carry no source.
    """

    category = "hierarchy"
    declares = ("subgoal_space",)

    subgoals = Input("Tensor", "high-level actions [num_envs, d] (a PolicyOutput reads as its action), stamped j; "
                               "each held for interval observations", reads=("PolicyOutput",), rule=Hold("every"))
    observations = Input("Tensor", "env observations [num_envs, obs_dim], stamped k")

    targets = Output("Tensor", "target positions held for observation k [num_envs, d]")
    relative = Output("Tensor", "target minus the position of observation k [num_envs, d]")

    interval = Param(int, None, "env steps per subgoal; default: the HighLevelStepNode's", ge=1, le=1_000_000,
                     nullable=True)
    mode = Param(str, "relative", "relative: target = position + scale * a; absolute: target = scale * a",
                 choices=("relative", "absolute"))
    scale = Param(float, 1.0, "distance of a full (+-1) subgoal action", gt=0.0, le=1e6)
    limit = Param(float, None, "clamp targets to [-limit, limit]; null: no clamp", gt=0.0, le=1e6, nullable=True)
    position_indices = Param(list, [0, 1], "observation components that hold the position", ge=0, le=1 << 20)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.every = self.interval
        self._target: torch.Tensor | None = None

    async def setup(self) -> None:
        """Declare the size of what the low level is conditioned on."""
        dim = len(self.position_indices)
        self.declare("subgoal_space", Box(torch.full((dim,), -torch.inf), torch.full((dim,), torch.inf)))

    async def start(self) -> None:
        """Take the interval from the high level upstream unless set (the ``Hold`` rule's size)."""
        self.every = resolve_interval(self, self.interval, "subgoals")

    async def compute(self, subgoals: torch.Tensor, observations: torch.Tensor) -> None:
        """Observation ``k`` with the decision held for it: a new target at the first step of a period."""
        k = self.stamp
        assert k is not None, "SubgoalNode needs stamped inputs"
        position = positions(observations, self.position_indices)
        if k % self.every == 0:
            self._target = self.target(subgoals, position)
        assert self._target is not None
        await self.emit("targets", self._target, k)
        await self.emit("relative", self._target - position, k)

    def target(self, action: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """The target position of one high-level decision."""
        if action.shape != position.shape:
            raise ValueError(f"subgoal actions of shape {list(action.shape)} do not match positions of shape "
                             f"{list(position.shape)} (position_indices {self.position_indices})")
        offset = self.scale * action.to(position.dtype).clamp(-1.0, 1.0)
        target = position + offset if self.mode == "relative" else offset
        if self.limit is not None:
            target = target.clamp(-self.limit, self.limit)
        return target
