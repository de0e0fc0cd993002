"""``TensorCache``: a value computed from tensors, kept until one of them changes.

A change is an in-place write through torch (``copy_``, an optimizer's step, ``load_state_dict``: each moves the
tensor's version counter) or the tensor replaced by another (``Module.to`` replaces buffers). Writes that bypass
torch (through ``.numpy()`` or ``.data``) are not seen. Inference tensors have no version counter: a value derived
from them is computed every time. A copied or pickled cache starts empty, since the copy's counters start again and
could meet the kept numbers.
"""
from __future__ import annotations

import operator
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

import torch

T = TypeVar("T")


class TensorCache(Generic[T]):
    """One kept value and what it was computed from."""

    def __init__(self) -> None:
        self._sources: tuple[torch.Tensor, ...] = ()
        self._key: tuple[Hashable, ...] = ()
        self._value: T | None = None

    def get(self, sources: tuple[torch.Tensor, ...], compute: Callable[[], T], *extra: Hashable) -> T:
        """The value ``compute()`` gave for ``sources`` in their present state and for ``extra`` (what else it
        depends on: a dtype, a shape), computed again when any of them changed."""
        versions = []
        for tensor in sources:
            if tensor.is_inference():
                return compute()
            versions.append(tensor._version)
        key = (*versions, *extra)
        kept = self._sources
        # map and operator.is_not: this runs on every acting step, where a generator's frames cost more than the check
        if (self._value is None or key != self._key or len(sources) != len(kept)
                or any(map(operator.is_not, sources, kept))):
            self._value, self._sources, self._key = compute(), sources, key
        return self._value

    def __getstate__(self) -> dict[str, Any]:
        """An empty cache: a copy computes its value afresh."""
        return {"_sources": (), "_key": (), "_value": None}
