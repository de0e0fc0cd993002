"""Observation and action spaces of batched environments: a float box or a set of discrete actions."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True, eq=False)
class Box:
    """A box of real vectors, ``low[i] <= x[i] <= high[i]`` (bounds may be infinite).

    Args:
        low: lower bounds, a 1-d float tensor on CPU.
        high: upper bounds, a 1-d float tensor on CPU of the same length.
    """

    low: torch.Tensor
    high: torch.Tensor

    def __post_init__(self) -> None:
        for name, bound in (("low", self.low), ("high", self.high)):
            if not isinstance(bound, torch.Tensor) or bound.dim() != 1 or not bound.is_floating_point():
                raise ValueError(f"Box.{name} must be a 1-d float tensor, got {bound!r}")
            if bound.device.type != "cpu":
                raise ValueError(f"Box.{name} must be on CPU, got device {bound.device}")
        if self.low.shape != self.high.shape:
            raise ValueError(f"Box bounds differ in shape: low {tuple(self.low.shape)}, high {tuple(self.high.shape)}")
        if bool((self.low > self.high).any()):
            raise ValueError(f"Box has low > high: low={self.low.tolist()}, high={self.high.tolist()}")

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one element, ``(dim,)``."""
        return tuple(self.low.shape)

    @property
    def dim(self) -> int:
        """Number of components of one element."""
        return int(self.low.shape[0])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Box):
            return NotImplemented
        return torch.equal(self.low, other.low) and torch.equal(self.high, other.high)

    __hash__ = None  # type: ignore[assignment]  # tensors are mutable, so a Box is not hashable


@dataclass(frozen=True)
class Discrete:
    """The actions ``0, 1, ..., n - 1``.

    Args:
        n: number of actions, at least 1.
    """

    n: int

    def __post_init__(self) -> None:
        if not isinstance(self.n, int) or isinstance(self.n, bool) or self.n < 1:
            raise ValueError(f"Discrete.n must be a positive int, got {self.n!r}")

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one element: a scalar, ``()``."""
        return ()


Space = Box | Discrete
