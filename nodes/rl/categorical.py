"""``CategoricalLogits``: the log-probability and entropy of a categorical distribution given by logits.

The same numbers as ``torch.distributions.Categorical(logits=...)``, bit for bit (the same arithmetic), without
what ``torch.distributions`` does on every construction and call (argument and sample checks, constraint objects,
lazy properties): for the main Cartpole graph's networks that was a quarter of an acting step's time (230 us
against 170 us for 32 envs) and 5 % of a PPO update's.
"""
from __future__ import annotations

import torch


class CategoricalLogits:
    """One categorical distribution per row of ``logits``.

    Args:
        logits: ``[..., num_actions]`` unnormalized log-probabilities.
    """

    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = logits - logits.logsumexp(dim=-1, keepdim=True)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        """``log p(a)`` of integer actions ``[...]`` (``Categorical.log_prob``'s arithmetic)."""
        index, log_pmf = torch.broadcast_tensors(actions.long().unsqueeze(-1), self.logits)
        return log_pmf.gather(-1, index[..., :1]).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        """``-sum p log p`` over the last dimension (``Categorical.entropy``'s arithmetic)."""
        logits = torch.clamp(self.logits, min=torch.finfo(self.logits.dtype).min)
        return -(logits * torch.softmax(self.logits, dim=-1)).sum(-1)
