"""Tests for the running mean/std normalizer."""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from dnne.nodes.rl.normalizer import RunningMeanStd


class TestRunningMeanStd:
    def test_matches_numpy_over_concatenated_batches(self) -> None:
        """Running mean and variance equal numpy's over all batches seen, for unequal batch sizes."""
        rng = np.random.default_rng(0)
        batches = [rng.normal(3.0, 2.0, size=(n, 4)) * np.arange(1, 5) for n in (1, 7, 50, 3, 200)]
        rms = RunningMeanStd((4,))
        for batch in batches:
            rms.update(torch.as_tensor(batch, dtype=torch.float32))
        everything = np.concatenate(batches).astype(np.float32).astype(np.float64)
        assert rms.count.item() == len(everything)
        assert np.allclose(rms.mean.numpy(), everything.mean(axis=0), rtol=1e-9, atol=1e-9)
        assert np.allclose(rms.var.numpy(), everything.var(axis=0), rtol=1e-9, atol=1e-9)

    def test_converges_to_true_statistics(self) -> None:
        """Running mean and std converge to the generating distribution's."""
        g = torch.Generator().manual_seed(1)
        rms = RunningMeanStd((2,))
        for _ in range(100):
            rms.update(torch.randn(500, 2, generator=g) * torch.tensor([0.5, 4.0]) + torch.tensor([-1.0, 10.0]))
        assert torch.allclose(rms.mean.float(), torch.tensor([-1.0, 10.0]), atol=0.05)
        assert torch.allclose(rms.var.sqrt().float(), torch.tensor([0.5, 4.0]), rtol=0.02)

    def test_flattens_leading_dims(self) -> None:
        """A [T, N, D] batch counts as T*N samples."""
        x = torch.randn(5, 3, 2, generator=torch.Generator().manual_seed(2))
        a, b = RunningMeanStd((2,)), RunningMeanStd((2,))
        a.update(x)
        b.update(x.reshape(15, 2))
        assert a.count.item() == 15
        assert torch.allclose(a.mean, b.mean) and torch.allclose(a.var, b.var)

    def test_normalize_clips_keeps_dtype_and_inverts(self) -> None:
        """normalize gives (x-mean)/sqrt(var+eps) clipped, in x's dtype; denormalize inverts it inside the clip."""
        g = torch.Generator().manual_seed(3)
        rms = RunningMeanStd((3,), epsilon=1e-5, clip=2.0)
        data = torch.randn(1000, 3, generator=g) * 3 + 1
        rms.update(data)
        x = torch.randn(20, 3, generator=g) * 3 + 1
        y = rms.normalize(x)
        expected = ((x.double() - data.double().mean(0)) / (data.double().var(0, unbiased=False) + 1e-5).sqrt())
        assert y.dtype == torch.float32
        assert torch.allclose(y, expected.clamp(-2, 2).float(), atol=1e-5)
        inside = expected.abs() < 2
        assert torch.allclose(rms.denormalize(y)[inside], x[inside], atol=1e-5)

    def test_no_clip(self) -> None:
        """With clip=None large values pass through unclipped."""
        rms = RunningMeanStd((), clip=None)
        rms.update(torch.tensor([0.0, 2.0]))
        assert rms.normalize(torch.tensor([101.0])).item() > 50

    def test_state_dict_round_trip_inside_a_module(self) -> None:
        """The statistics travel in a parent module's state_dict."""
        parent, other = nn.Module(), nn.Module()
        parent.norm, other.norm = RunningMeanStd((2,)), RunningMeanStd((2,))
        parent.norm.update(torch.randn(10, 2, generator=torch.Generator().manual_seed(4)))
        assert {"norm.mean", "norm.var", "norm.count"} <= set(parent.state_dict())
        other.load_state_dict(parent.state_dict())
        assert torch.equal(other.norm.mean, parent.norm.mean) and torch.equal(other.norm.var, parent.norm.var)
        assert other.norm.count.item() == 10

    def test_moments_follow_every_change_of_the_statistics(self) -> None:
        """The moments kept between changes of the statistics are computed again after an update, a loaded state,
        an in-place change and a replaced buffer: (de)normalising then gives what the float64 statistics give
        directly."""
        rms = RunningMeanStd((3,), clip=None)
        x = torch.tensor([[1.0, -2.0, 0.5], [4.0, 0.0, 2.5]])

        def load() -> None:
            rms.load_state_dict({"mean": torch.full((3,), 7.0, dtype=torch.float64),
                                 "var": torch.full((3,), 4.0, dtype=torch.float64),
                                 "count": torch.tensor(9.0, dtype=torch.float64)})

        def replace() -> None:
            rms.var = torch.full((3,), 0.25, dtype=torch.float64)

        for change in (lambda: rms.update(x * 3.0), load, lambda: rms.mean.add_(1.0), replace):
            before = rms.normalize(x)
            change()
            assert_moments_are_the_statistics(rms, x)
            assert not torch.equal(rms.normalize(x), before)

    def test_a_copy_computes_its_own_moments(self) -> None:
        """A deep copy whose buffers' version counters climb back to the original's numbers while their values
        move elsewhere still normalises with its own statistics."""
        rms = RunningMeanStd((3,), clip=None)
        x = torch.tensor([[1.0, -2.0, 0.5], [4.0, 0.0, 2.5]])
        rms.update(x)
        rms.normalize(x)
        twin = copy.deepcopy(rms)
        while twin.mean._version < rms.mean._version or twin.var._version < rms.var._version:
            twin.mean.add_(1.0)
            twin.var.mul_(2.0)
        assert (twin.mean._version, twin.var._version) == (rms.mean._version, rms.var._version)
        assert_moments_are_the_statistics(twin, x)

    def test_statistics_made_in_inference_mode_normalise(self) -> None:
        """Buffers without a version counter (made under ``torch.inference_mode``) are read afresh every time."""
        with torch.inference_mode():
            rms = RunningMeanStd((3,), clip=None)
            x = torch.tensor([[1.0, -2.0, 0.5], [4.0, 0.0, 2.5]])
            rms.update(x)
            assert_moments_are_the_statistics(rms, x)
            rms.mean.add_(1.0)
            assert_moments_are_the_statistics(rms, x)


def assert_moments_are_the_statistics(rms: RunningMeanStd, x: torch.Tensor) -> None:
    """``normalize`` and ``denormalize`` of ``x`` use ``rms``'s float64 statistics as they are now."""
    mean, std = rms.mean.to(x.dtype), torch.sqrt(rms.var + rms.epsilon).to(x.dtype)
    assert torch.equal(rms.normalize(x), (x - mean) / std)
    assert torch.equal(rms.denormalize(x), x * std + mean)
