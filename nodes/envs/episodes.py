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

    def record(self, ctx: NodeContext, returns: torch.Tensor, lengths: torch.Tensor,
               ended: torch.Tensor | None = None) -> None:
        """Add finished episodes and publish the counters; ``ended`` is the step's ``[num_envs]`` bool mask of the
        envs whose episode ended (the episodes are in env order), which an evaluation needs to give every env its
        quota of episodes."""
        if not len(returns):
            return
        finished = returns.double().cpu().tolist()
        finished_lengths = lengths.cpu().tolist()
        if ctx.mode == "play":  # an evaluation reports every episode, not only the window
            envs = ended.nonzero().flatten().tolist() if ended is not None else [None] * len(finished)
            num_envs = float(len(ended)) if ended is not None else None
            for value, length, env in zip(finished, finished_lengths, envs):
                row = {"episode_return": value, "episode_length": length}
                if env is not None:
                    row.update(episode_env=float(env), num_envs=num_envs)
                ctx.log_metrics(row)
        ctx.counters.add("episodes", len(returns))
        ctx.counters.observe("mean_length", finished_lengths, WINDOW)
        ctx.counters.observe("mean_return", finished, WINDOW)
