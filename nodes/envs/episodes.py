"""Run-wide episode statistics: the mean return of the last finished episodes, over every env group."""
from __future__ import annotations

import torch

from dnne.runtime.context import NodeContext

WINDOW = 20


class EpisodeStats:
    """The statistics of a run's finished episodes, published as counters whenever an episode ends: ``episodes``
    (added up) and ``mean_return`` / ``mean_length``, the means of the last ``WINDOW`` episodes of every env group
    (``Counters.observe``: in a split run the episodes themselves travel, so the window spans every process)."""

    @staticmethod
    def of(ctx: NodeContext) -> EpisodeStats:
        """The statistics shared by every node of ``ctx``'s run."""
        return ctx.shared("episode_stats", EpisodeStats)

    def record(self, ctx: NodeContext, returns: torch.Tensor, lengths: torch.Tensor) -> None:
        """Add finished episodes and publish the counters."""
        if not len(returns):
            return
        finished = returns.double().cpu().tolist()
        finished_lengths = lengths.cpu().tolist()
        if ctx.mode == "play":  # an evaluation reports every episode, not only the window
            for value, length in zip(finished, finished_lengths):
                ctx.log_metrics({"episode_return": value, "episode_length": length})
        ctx.counters.add("episodes", len(returns))
        ctx.counters.observe("mean_length", finished_lengths, WINDOW)
        ctx.counters.observe("mean_return", finished, WINDOW)
