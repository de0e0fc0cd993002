"""``EpisodeSuccessNode``: the share of finished episodes that reached their goal, recorded as the run goes."""
from __future__ import annotations

from typing import Any

import torch

from dnne.runtime.node import Node
from dnne.runtime.ports import Input, Param


class EpisodeSuccessNode(Node):
    """Counts finished episodes whose return reaches ``threshold`` as successes and records the success rate.

    Reads a step node's ``info`` (``episode_returns`` of the episodes that ended in each step). On a task whose
    return is 1 for reaching the goal and 0 otherwise (``PointMassMaze``), the default threshold 1 counts exactly
    the episodes that reached it. Each time the run's ``env_steps`` counter passes a multiple of ``interval``, it
    records a metrics row with ``success_rate`` (successes over episodes that ended since the previous row) and
    ``success_episodes`` (how many ended), and sets the ``success_rate`` counter to the same rate; an interval in
    which no episode ended records nothing. The counter is read when the info is taken, so a row may be stamped a
    step or two past the episodes it counts. Nothing is checkpointed: a resumed run starts a new interval.
    """

    category = "hierarchy"

    info = Input("Dict", "a step node's info: episode_returns of the episodes that ended")

    threshold = Param(float, 1.0, "an episode whose return reaches this counts as a success", ge=-1e9, le=1e9)
    interval = Param(int, 50_000, "env steps (summed over envs) between recorded rows", ge=1, le=1 << 40)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._successes = 0
        self._episodes = 0
        self._next_row = self.interval

    async def compute(self, info: dict[str, Any]) -> None:
        """Count the episodes of one step; record a row when an interval is complete."""
        returns = info.get("episode_returns")
        if not isinstance(returns, torch.Tensor):
            raise ValueError("info has no episode_returns tensor: link a step node's info output here")
        self._successes += int((returns >= self.threshold).sum().item())
        self._episodes += returns.numel()
        steps = self.ctx.counters.get("env_steps", 0) or 0
        if steps < self._next_row:
            return None
        self._next_row = (int(steps) // self.interval + 1) * self.interval
        if self._episodes:
            rate = self._successes / self._episodes
            self.ctx.counters.set("success_rate", rate)
            self.ctx.log_metrics({"success_rate": rate, "success_episodes": self._episodes})
        self._successes = self._episodes = 0
        return None
