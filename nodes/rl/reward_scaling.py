"""Reward scaling by the running standard deviation of the discounted return (Engstrom et al. 2020's "reward
scaling", Gymnasium's ``NormalizeReward``, CleanRL's and SB3's ``VecNormalize`` reward path)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


class RewardScaler:
    """Divide each reward by the running std of every env's discounted return, then clip.

    Each env keeps ``G <- gamma * G + r``; the spread of ``G`` over all envs and steps so far is what the reward is
    divided by (the mean is not subtracted: shifting rewards would change which policy is optimal). ``G`` restarts at
    every episode end, terminated or truncated, so one episode's return never leaks into the next. The arithmetic
    is NumPy float64 on a few numbers per step: the trainer runs it once per transition, where a dozen small torch
    calls cost more than the rest of collecting.

    Args:
        num_envs: envs in the group (one running return each).
        gamma: the discount of the running return (the trainer's).
        clip: scaled rewards are clamped to ``[-clip, clip]``; ``None`` disables clipping.
        epsilon: added to the variance before the square root.
    """

    def __init__(self, num_envs: int, gamma: float, clip: float | None = 10.0, epsilon: float = 1e-8) -> None:
        self.gamma = gamma
        self.clip = clip
        self.epsilon = epsilon
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self.mean = 0.0
        self.var = 1.0
        self.count = 0.0

    def __call__(self, rewards: torch.Tensor, dones: torch.Tensor) -> torch.Tensor:
        """Scale one step's rewards ``[num_envs]`` (updating the statistics first); ``dones`` ends episodes after it."""
        raw = _flat(rewards).astype(np.float64)
        self.returns = self.returns * self.gamma + raw
        self._update(self.returns)
        scaled = raw / math.sqrt(self.var + self.epsilon)
        if self.clip is not None:
            scaled = np.minimum(np.maximum(scaled, -self.clip), self.clip)
        self.returns[_flat(dones).astype(bool)] = 0.0
        out = torch.from_numpy(scaled).to(rewards.dtype)
        return out if out.shape == rewards.shape and rewards.device == out.device else (
            out.reshape(rewards.shape).to(rewards.device))

    def _update(self, batch: np.ndarray) -> None:
        """Merge a batch into the running mean and (population) variance (Chan et al.'s parallel formula); the
        batch's mean and variance summed as ``ndarray.mean`` and ``ndarray.var`` sum them, without their wrappers."""
        count = batch.size
        batch_mean = float(np.add.reduce(batch)) / count
        centred = batch - batch_mean
        batch_var = float(np.add.reduce(centred * centred)) / count
        total = self.count + count
        delta = batch_mean - self.mean
        m2 = self.var * self.count + batch_var * count + delta * delta * self.count * count / total
        self.mean += delta * count / total
        self.var = m2 / total
        self.count = total

    def state_dict(self) -> dict[str, Any]:
        """The running returns and statistics (copies), for a checkpoint."""
        return {"returns": torch.from_numpy(self.returns.copy()),
                "statistics": {name: torch.tensor(getattr(self, name), dtype=torch.float64)
                               for name in ("mean", "var", "count")}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        returns = state["returns"].to(torch.float64)
        if returns.shape != self.returns.shape:
            raise ValueError(f"the checkpoint's reward scaler has {returns.numel()} envs, this group "
                             f"{self.returns.size}")
        self.returns = returns.numpy().copy()
        statistics = state["statistics"]
        self.mean, self.var, self.count = (float(statistics[name]) for name in ("mean", "var", "count"))


def _flat(tensor: torch.Tensor) -> np.ndarray:
    """The values of ``tensor`` as a flat NumPy array (a view where it is on the CPU)."""
    return tensor.detach().cpu().numpy().reshape(-1)
