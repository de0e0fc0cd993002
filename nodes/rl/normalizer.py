"""Running mean and variance of a stream of batches, used to normalize observations and value targets."""
from __future__ import annotations

import torch
from torch import nn

from dnne.nodes.rl.tensor_cache import TensorCache


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
        self._moments: TensorCache[tuple[torch.Tensor, torch.Tensor]] = TensorCache()

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
        """``(mean, sqrt(var + eps))`` in ``dtype``, computed again only when the statistics change
        (``TensorCache``): an actor normalises every step with statistics that change once a rollout, and the
        conversions were a fifth of a small policy's acting step."""
        return self._moments.get((self.mean, self.var),
                                 lambda: (self.mean.to(dtype), torch.sqrt(self.var + self.epsilon).to(dtype)), dtype)

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
