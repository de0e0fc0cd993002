"""Tests for generalized advantage estimation against a plain scalar loop."""
from __future__ import annotations

import pytest
import torch

from dnne.nodes.rl.gae import compute_gae
from dnne.nodes.rl.vtrace import compute_vtrace


def reference_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
    """Per env, per step, with Python floats: the textbook recursion written independently."""
    T, N = len(rewards), len(rewards[0])
    adv = [[0.0] * N for _ in range(T)]
    for n in range(N):
        running = 0.0
        for t in range(T - 1, -1, -1):
            bootstrap = 0.0 if terminated[t][n] else gamma * next_values[t][n]
            delta = rewards[t][n] + bootstrap - values[t][n]
            if terminated[t][n] or truncated[t][n]:
                running = 0.0  # the next step belongs to another episode
            running = delta + gamma * lam * running
            adv[t][n] = running
    ret = [[adv[t][n] + values[t][n] for n in range(N)] for t in range(T)]
    return torch.tensor(adv, dtype=torch.float64), torch.tensor(ret, dtype=torch.float64)


class TestComputeGAE:
    @pytest.mark.parametrize("seed", [0, 1, 2, 3])
    def test_matches_scalar_loop(self, seed: int) -> None:
        """Vectorized GAE equals the per-env scalar recursion with terminations, truncations and a horizon end."""
        g = torch.Generator().manual_seed(seed)
        T, N, gamma, lam = 17, 5, 0.97, 0.9
        rewards = torch.randn(T, N, generator=g, dtype=torch.float64)
        values = torch.randn(T, N, generator=g, dtype=torch.float64)
        next_values = torch.randn(T, N, generator=g, dtype=torch.float64)
        terminated = torch.rand(T, N, generator=g) < 0.15
        truncated = (torch.rand(T, N, generator=g) < 0.15) & ~terminated
        adv, ret = compute_gae(rewards, values, next_values, terminated, terminated | truncated, gamma, lam)
        ref_adv, ref_ret = reference_gae(
            rewards.tolist(), values.tolist(), next_values.tolist(), terminated.tolist(), truncated.tolist(), gamma, lam
        )
        assert torch.allclose(adv, ref_adv) and torch.allclose(ret, ref_ret)

    def test_single_step_cases(self) -> None:
        """One step: termination bootstraps zero; truncation and the horizon end bootstrap next_value."""
        rewards = torch.tensor([[1.0, 1.0, 1.0]])
        values = torch.tensor([[0.5, 0.5, 0.5]])
        next_values = torch.tensor([[2.0, 2.0, 2.0]])
        terminated = torch.tensor([[True, False, False]])
        dones = torch.tensor([[True, True, False]])
        adv, ret = compute_gae(rewards, values, next_values, terminated, dones, 0.9, 0.95)
        assert torch.allclose(adv, torch.tensor([[0.5, 1.0 + 1.8 - 0.5, 1.0 + 1.8 - 0.5]]))
        assert torch.allclose(ret, adv + values)

    def test_lambda_one_no_dones_is_discounted_return(self) -> None:
        """With lam=1 and no episode ends the returns are discounted reward sums plus the bootstrapped tail."""
        g = torch.Generator().manual_seed(5)
        T, gamma = 6, 0.9
        rewards = torch.randn(T, 1, generator=g, dtype=torch.float64)
        values = torch.randn(T, 1, generator=g, dtype=torch.float64)
        next_values = torch.cat([values[1:], torch.tensor([[3.0]], dtype=torch.float64)])
        falses = torch.zeros(T, 1, dtype=torch.bool)
        _, ret = compute_gae(rewards, values, next_values, falses, falses, gamma, 1.0)
        expected = sum(gamma**k * rewards[k, 0].item() for k in range(T)) + gamma**T * 3.0
        assert ret[0, 0].item() == pytest.approx(expected)

    def test_accepts_float_flags(self) -> None:
        """0/1 float flags give the same result as bool flags."""
        g = torch.Generator().manual_seed(6)
        r, v, nv = (torch.randn(4, 3, generator=g) for _ in range(3))
        term = torch.rand(4, 3, generator=g) < 0.3
        a1, _ = compute_gae(r, v, nv, term, term, 0.99, 0.95)
        a2, _ = compute_gae(r, v, nv, term.float(), term.float(), 0.99, 0.95)
        assert torch.allclose(a1, a2)


class TestVtrace:
    def test_on_policy_equals_gae(self) -> None:
        """With every log importance weight 0 (on-policy), V-trace's advantages and targets are GAE's."""
        generator = torch.Generator().manual_seed(0)
        rewards, values, next_values = (torch.randn(6, 3, generator=generator) for _ in range(3))
        terminated = torch.rand(6, 3, generator=generator) < 0.2
        dones = terminated | (torch.rand(6, 3, generator=generator) < 0.2)
        gae = compute_gae(rewards, values, next_values, terminated, dones, 0.9, 0.8)
        vtrace = compute_vtrace(rewards, values, next_values, terminated, dones, torch.zeros(6, 3), 0.9, 0.8, 1.0)
        assert all(torch.allclose(a, b) for a, b in zip(gae, vtrace))

    def test_matches_the_definition(self) -> None:
        """One env, three steps, no episode end: advantages equal the V-trace sums written out by hand,
        sum_s gamma^(s-t) (prod_{i<s} c_i) delta_s with truncated rho and c."""
        rewards = torch.tensor([[1.0], [0.5], [-1.0]])
        values = torch.tensor([[0.2], [0.4], [0.1]])
        next_values = torch.tensor([[0.4], [0.1], [0.3]])
        ratios = torch.tensor([[2.0], [0.5], [1.5]])
        no = torch.zeros(3, 1, dtype=torch.bool)
        gamma, lam, rho_clip = 0.9, 0.95, 1.2
        advantages, returns = compute_vtrace(rewards, values, next_values, no, no, ratios.log(), gamma, lam,
                                             rho_clip)
        rho = [min(rho_clip, float(r)) for r in ratios]
        c = [lam * min(1.0, float(r)) for r in ratios]
        delta = [rho[t] * (float(rewards[t]) + gamma * float(next_values[t]) - float(values[t])) for t in range(3)]
        expected = [delta[0] + gamma * c[0] * (delta[1] + gamma * c[1] * delta[2]),
                    delta[1] + gamma * c[1] * delta[2], delta[2]]
        assert torch.allclose(advantages[:, 0], torch.tensor(expected))
        assert torch.allclose(returns, advantages + values)
