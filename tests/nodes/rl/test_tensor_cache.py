"""``TensorCache``: a value kept until a tensor it came from changes, is replaced, or what else it depends on moves."""
from __future__ import annotations

import copy

import torch

from dnne.nodes.rl.tensor_cache import TensorCache


def test_the_value_follows_its_tensors() -> None:
    """Computed once while nothing changes; again after an in-place change, a replaced tensor or another extra key;
    every time for inference tensors; afresh in a copy."""
    cache: TensorCache[float] = TensorCache()
    calls: list[float] = []
    a, b = torch.ones(2), torch.ones(3)

    def value(*sources: torch.Tensor, extra: str = "x") -> float:
        def compute() -> float:
            calls.append(float(sum(s.sum() for s in sources)))
            return calls[-1]
        return cache.get(sources, compute, extra)

    assert value(a, b) == value(a, b) == 5.0 and len(calls) == 1
    a.add_(1.0)
    assert value(a, b) == 7.0 and len(calls) == 2
    assert value(a, torch.ones(3)) == 7.0 and len(calls) == 3  # another tensor, the same numbers
    assert value(a, b, extra="y") == 7.0 and len(calls) == 4
    twin = copy.deepcopy(cache)
    assert twin.get((a, b), lambda: -1.0, "y") == -1.0
    with torch.inference_mode():
        c = torch.ones(2)
    assert value(c) == value(c) == 2.0 and len(calls) == 6
