"""Tests for rollout storage and minibatch sampling."""
from __future__ import annotations

import pytest
import torch

from dnne.nodes.rl.rollout import RolloutBuffer

T, N, OBS, ACT = 5, 4, 3, 2


def fill(buffer: RolloutBuffer, steps: int, discrete: bool = False) -> None:
    """Add steps whose every field encodes (t, n) as 100*t + n."""
    for t in range(steps):
        code = 100.0 * t + torch.arange(N, dtype=torch.float32)
        action = code.long() if discrete else code[:, None].expand(N, ACT)
        buffer.add(
            obs=code[:, None].expand(N, OBS), action=action, log_prob=code, value=code + 0.5, reward=-code,
            terminated=torch.tensor([True, False, False, False]), truncated=torch.tensor([False, True, False, False]),
            next_value=code + 0.25,
        )  # fmt: skip


class TestStorage:
    def test_shapes_and_dtypes(self) -> None:
        """Tensors are preallocated [T, N, ...] with float or long actions."""
        cont = RolloutBuffer(T, N, (OBS,), (ACT,), torch.float32)
        disc = RolloutBuffer(T, N, (OBS,), (), torch.long)
        assert cont.observations.shape == (T, N, OBS) and cont.actions.shape == (T, N, ACT)
        assert disc.actions.shape == (T, N) and disc.actions.dtype == torch.long
        for name in ("log_probs", "values", "rewards", "next_values", "terminated", "dones"):
            assert getattr(cont, name).shape == (T, N)

    def test_add_fill_reset(self) -> None:
        """add stores at the current step, full after T steps, add on a full buffer raises, reset starts over."""
        buffer = RolloutBuffer(T, N, (OBS,), (ACT,))
        assert buffer.step == 0 and not buffer.full
        fill(buffer, T)
        assert buffer.step == T and buffer.full
        assert torch.equal(buffer.values[3], 300.0 + torch.arange(N) + 0.5)
        assert torch.equal(buffer.observations[2, 1], torch.full((OBS,), 201.0))
        assert buffer.terminated[0].tolist() == [True, False, False, False]
        assert buffer.dones[0].tolist() == [True, True, False, False]
        with pytest.raises(RuntimeError, match="full"):
            fill(buffer, 1)
        buffer.reset()
        assert buffer.step == 0 and not buffer.full
        fill(buffer, 1, discrete=False)
        assert buffer.step == 1

    def test_flatten_row_order(self) -> None:
        """flatten merges time and env as row t*N + n, over the stored steps only."""
        buffer = RolloutBuffer(T, N, (OBS,), (), torch.long)
        fill(buffer, 3, discrete=True)
        flat = buffer.flatten()
        assert flat["observations"].shape == (3 * N, OBS) and flat["actions"].shape == (3 * N,)
        expected = torch.tensor([100.0 * t + n for t in range(3) for n in range(N)])
        assert torch.equal(flat["log_probs"], expected)
        assert torch.equal(flat["actions"], expected.long())


class TestMinibatches:
    def test_each_sample_once_per_epoch(self) -> None:
        """Indices cover every (t, env) exactly once, with a kept smaller last minibatch."""
        buffer = RolloutBuffer(T, N, (OBS,), (ACT,))
        fill(buffer, T)
        batches = buffer.minibatch_indices(6, torch.Generator().manual_seed(0))
        assert [len(b) for b in batches] == [6, 6, 6, 2]
        assert torch.equal(torch.cat(batches).sort().values, torch.arange(T * N))

    def test_mixes_envs_and_time(self) -> None:
        """A minibatch draws from several envs and several time steps (not whole steps or whole envs)."""
        buffer = RolloutBuffer(16, 8, (OBS,), (ACT,))
        zeros, falses = torch.zeros(8), torch.zeros(8, dtype=torch.bool)
        for _ in range(16):
            buffer.add(torch.zeros(8, OBS), torch.zeros(8, ACT), zeros, zeros, zeros, falses, falses, zeros)
        batches = buffer.minibatch_indices(32, torch.Generator().manual_seed(1))
        for idx in batches:
            steps, envs = idx // 8, idx % 8
            assert len(steps.unique()) > 4 and len(envs.unique()) > 4
            assert not all(len(envs[steps == s]) == 8 for s in steps.unique())

    def test_clamp_and_determinism(self) -> None:
        """A minibatch larger than the batch clamps to one batch; the same seed gives the same order."""
        buffer = RolloutBuffer(T, N, (OBS,), (ACT,))
        fill(buffer, T)
        (single,) = buffer.minibatch_indices(1000, torch.Generator().manual_seed(0))
        assert len(single) == T * N
        a = buffer.minibatch_indices(7, torch.Generator().manual_seed(3))
        b = buffer.minibatch_indices(7, torch.Generator().manual_seed(3))
        assert all(torch.equal(x, y) for x, y in zip(a, b))
