"""Run-wide episode statistics: the mean return of the last finished episodes, over every env group."""
from __future__ import annotations

from collections import deque

import torch

from dnne.runtime.context import NodeContext

WINDOW = 20


class EpisodeStats:
    """The last ``WINDOW`` finished episodes of a run; publishes ``mean_return``, ``mean_length`` and
    ``episodes`` counters whenever an episode ends."""

    def __init__(self) -> None:
        self.returns: deque[float] = deque(maxlen=WINDOW)
        self.lengths: deque[int] = deque(maxlen=WINDOW)

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
        self.returns.extend(finished)
        self.lengths.extend(finished_lengths)
        if ctx.mode == "play":  # an evaluation reports every episode, not only the window
            for value, length in zip(finished, finished_lengths):
                ctx.log_metrics({"episode_return": value, "episode_length": length})
        ctx.counters.add("episodes", len(returns))
        ctx.counters.set("mean_length", sum(self.lengths) / len(self.lengths))
        ctx.counters.set("mean_return", sum(self.returns) / len(self.returns))

    def state_dict(self) -> dict[str, list[float]]:
        """The window, for checkpoints."""
        return {"returns": list(self.returns), "lengths": list(self.lengths)}

    def load_state_dict(self, state: dict[str, list[float]]) -> None:
        """Restore the window."""
        self.returns = deque(state["returns"], maxlen=WINDOW)
        self.lengths = deque(state["lengths"], maxlen=WINDOW)
