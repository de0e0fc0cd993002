"""Reward scaling by the running std of the discounted return: against a plain recomputation, in the trainer, and
across a checkpoint (exact resume)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runs import dnne, metric_rows
from dnne.nodes.rl.reward_scaling import RewardScaler

ROOT = Path(__file__).resolve().parents[3]
PENDULUM = ROOT / "graphs" / "pendulum_ppo.json"
FIELDS = ("iteration", "env_steps", "policy_loss", "value_loss", "entropy", "approx_kl", "explained_variance",
          "mean_return")


def recomputed(rewards: np.ndarray, dones: np.ndarray, gamma: float, clip: float, eps: float) -> np.ndarray:
    """The scaled rewards from first principles: every discounted return seen so far, their population variance."""
    returns = np.zeros(rewards.shape[1])
    seen: list[float] = []
    out = np.zeros_like(rewards)
    for t in range(rewards.shape[0]):
        returns = gamma * returns + rewards[t]
        seen.extend(returns.tolist())
        out[t] = np.clip(rewards[t] / np.sqrt(np.var(seen) + eps), -clip, clip)
        returns = np.where(dones[t], 0.0, returns)
    return out


class TestRewardScaler:
    def test_equals_recomputation(self) -> None:
        """40 steps of 3 envs with episode ends: each scaled reward is the raw one over the std of all discounted
        returns so far, clipped."""
        rng = np.random.default_rng(0)
        rewards = rng.normal(2.0, 3.0, size=(40, 3))
        dones = rng.random((40, 3)) < 0.1
        scaler = RewardScaler(3, 0.9, clip=2.5)
        got = np.stack([scaler(torch.tensor(r, dtype=torch.float32), torch.tensor(d)).double().numpy()
                        for r, d in zip(rewards, dones)])
        want = recomputed(rewards, dones, 0.9, 2.5, 1e-8)
        assert np.abs(want).max() == pytest.approx(2.5)  # the clip was reached, so it is tested too
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

    def test_state_round_trip(self) -> None:
        """A scaler restored from ``state_dict`` scales the next rewards exactly as the original."""
        scaler = RewardScaler(2, 0.99)
        for step in range(5):
            scaler(torch.tensor([1.0 + step, -2.0]), torch.tensor([False, step == 2]))
        copy = RewardScaler(2, 0.99)
        copy.load_state_dict(scaler.state_dict())
        rewards, dones = torch.tensor([3.0, 0.5]), torch.tensor([False, False])
        assert torch.equal(copy(rewards, dones), scaler(rewards, dones))

    def test_wrong_env_count_refused(self) -> None:
        with pytest.raises(ValueError, match="3 envs"):
            RewardScaler(2, 0.99).load_state_dict(RewardScaler(3, 0.99).state_dict())


def rows(run_dir: Path) -> list[tuple]:
    """The training fields of every metrics row."""
    return metric_rows(run_dir, FIELDS)


@pytest.mark.slow  # a whole CLI run (10-13 s): CI's slow step
def test_reward_scaling_and_separate_critic_resume_exactly(tmp_path: Path) -> None:
    """graphs/pendulum_ppo.json with trainer.reward_scaling and a separate critic trunk: 3 iterations, then --resume
    to 6, logs exactly what 6 iterations in one go log (the running returns and their statistics are checkpointed);
    without reward scaling the value loss differs, so the option is in force."""
    common = ("--set", "run.target_return=null", "--set", "agent.shared_trunk=false", "-q")
    scaled = ("--set", "trainer.reward_scaling=true", "--set", "trainer.reward_clip=5")
    dnne("run", str(PENDULUM), "--run-dir", str(tmp_path / "whole"), "--set", "run.max_iterations=6", *common, *scaled)
    dnne("run", str(PENDULUM), "--run-dir", str(tmp_path / "split"), "--set", "run.max_iterations=3", *common, *scaled)
    dnne("run", "--resume", str(tmp_path / "split"), "--set", "run.max_iterations=6", "-q")
    dnne("run", str(PENDULUM), "--run-dir", str(tmp_path / "raw"), "--set", "run.max_iterations=1", *common)
    whole, split = rows(tmp_path / "whole"), rows(tmp_path / "split")
    assert len(whole) == 6 and split == whole
    assert rows(tmp_path / "raw")[0][3] != whole[0][3]
