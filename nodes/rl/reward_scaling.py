"""Reward scaling by the running standard deviation of the discounted return (Engstrom et al. 2020's "reward
scaling", Gymnasium's ``NormalizeReward``, CleanRL's and SB3's ``VecNormalize`` reward path)."""
from __future__ import annotations

from typing import Any

import torch

from .normalizer import RunningMeanStd


class RewardScaler:
    """Divide each reward by the running std of every env's discounted return, then clip.

    Each env keeps ``G <- gamma * G + r``; the spread of ``G`` over all envs and steps so far is what the reward is
    divided by (the mean is not subtracted: shifting rewards would change which policy is optimal). ``G`` restarts at
    every episode end, terminated or truncated, so one episode's return never leaks into the next.

    Args:
        num_envs: envs in the group (one running return each).
        gamma: the discount of the running return (the trainer's).
        clip: scaled rewards are clamped to ``[-clip, clip]``; ``None`` disables clipping.
        epsilon: added to the variance before the square root.
    """

    def __init__(self, num_envs: int, gamma: float, clip: float | None = 10.0, epsilon: float = 1e-8) -> None:
        self.gamma = gamma
        self.clip = clip
        self.returns = torch.zeros(num_envs, dtype=torch.float64)
        self.statistics = RunningMeanStd((), epsilon=epsilon, clip=None)

    def __call__(self, rewards: torch.Tensor, dones: torch.Tensor) -> torch.Tensor:
        """Scale one step's rewards ``[num_envs]`` (updating the statistics first); ``dones`` ends episodes after it."""
        raw = rewards.detach().to(torch.float64).reshape(-1).cpu()
        self.returns = self.returns * self.gamma + raw
        self.statistics.update(self.returns)
        std = torch.sqrt(self.statistics.var + self.statistics.epsilon)
        scaled = raw / std
        if self.clip is not None:
            scaled = scaled.clamp(-self.clip, self.clip)
        self.returns = torch.where(dones.reshape(-1).cpu().bool(), torch.zeros_like(self.returns), self.returns)
        return scaled.to(rewards.dtype).reshape(rewards.shape).to(rewards.device)

    def state_dict(self) -> dict[str, Any]:
        """The running returns and statistics (copies), for a checkpoint."""
        return {"returns": self.returns.clone(),
                "statistics": {name: value.clone() for name, value in self.statistics.state_dict().items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        returns = state["returns"].to(torch.float64)
        if returns.shape != self.returns.shape:
            raise ValueError(f"the checkpoint's reward scaler has {returns.numel()} envs, this group "
                             f"{self.returns.numel()}")
        self.returns = returns.clone()
        self.statistics.load_state_dict(state["statistics"])
