"""Running mean and variance of a stream of batches, used to normalize observations and value targets."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


class RunningMeanStd(nn.Module):
    """Running per-feature mean and (population) variance, merged batch by batch.

    The statistics are float64 buffers: summing many float32 batches drifts, and the buffers are tiny. They live in
    ``state_dict`` so a checkpoint restores the normalization the policy was trained with.

    Args:
        shape: shape of one sample (the features); batches are ``[B, *shape]`` or ``[..., *shape]``.
        epsilon: added to the variance before the square root so constant features do not divide by zero.
        clip: normalized values are clamped to ``[-clip, clip]``; ``None`` disables clipping.
    """

    mean: torch.Tensor
    var: torch.Tensor
    count: torch.Tensor

    def __init__(self, shape: tuple[int, ...], epsilon: float = 1e-5, clip: float | None = 5.0) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.epsilon = epsilon
        self.clip = clip
        self.register_buffer("mean", torch.zeros(self.shape, dtype=torch.float64))
        # var starts at 1 so normalizing before the first update is (almost) the identity.
        self.register_buffer("var", torch.ones(self.shape, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self._moments_cache: tuple[Any, ...] | None = None

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Merge a batch into the running statistics (Chan et al.'s parallel formula).

        Args:
            x: samples ``[B, *shape]``; leading dimensions beyond one (e.g. ``[T, N, *shape]``) are flattened into B.
        """
        batch = x.detach().reshape(-1, *self.shape).to(torch.float64)
        batch_count = batch.shape[0]
        if batch_count == 0:
            return
        batch_mean = batch.mean(dim=0)
        batch_var = batch.var(dim=0, unbiased=False)
        total = self.count + batch_count
        delta = batch_mean - self.mean
        m2 = self.var * self.count + batch_var * batch_count + delta.square() * self.count * batch_count / total
        self.mean.add_(delta * batch_count / total)
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def moments(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, sqrt(var + eps))`` in ``dtype``, computed once for each state of the statistics: again after
        something changes them in place through torch (``update``, ``load_state_dict``, which bump the buffers' version
counters) or replaces them (``to``). An actor
        normalises every step with statistics that change once a rollout; the conversions were a fifth of a small
        policy's acting step."""
        mean, var = self.mean, self.var
        if mean.is_inference() or var.is_inference():  # no version counter to tell a change by
            return mean.to(dtype), torch.sqrt(var + self.epsilon).to(dtype)
        cached = self._moments_cache
        if (cached is None or cached[0] is not mean or cached[1] is not var or cached[2] != mean._version
                or cached[3] != var._version or cached[4] != dtype):
            cached = (mean, var, mean._version, var._version, dtype, mean.to(dtype),
                      torch.sqrt(var + self.epsilon).to(dtype))
            self._moments_cache = cached
        return cached[5], cached[6]

    def __getstate__(self) -> dict[str, Any]:
        """A copy (``copy.deepcopy``, pickling) computes its moments afresh: its buffers' version counters start
        again, so the kept ones could match them."""
        return {**super().__getstate__(), "_moments_cache": None}

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(x - mean) / sqrt(var + eps)``, clipped, in ``x``'s dtype (does not update the statistics)."""
        mean, std = self.moments(x.dtype)
        y = (x - mean) / std
        if self.clip is not None:
            y = y.clamp(-self.clip, self.clip)
        return y

    def denormalize(self, y: torch.Tensor) -> torch.Tensor:
        """Invert ``normalize`` (up to clipping): ``y * sqrt(var + eps) + mean`` in ``y``'s dtype."""
        mean, std = self.moments(y.dtype)
        return y * std + mean

    def extra_repr(self) -> str:
        return f"shape={self.shape}, epsilon={self.epsilon}, clip={self.clip}"
