"""Preallocated on-device storage for one PPO rollout of ``horizon`` steps from ``num_envs`` environments."""
from __future__ import annotations

import torch


class RolloutBuffer:
    """Fixed-size ``[T, N, ...]`` storage of transitions, filled one batched step at a time.

    Values are stored in reward units (denormalized), so GAE never depends on the value normalizer's state; the
    update maps them to the critic's space after refreshing the statistics.

    Args:
        horizon: steps per rollout (T).
        num_envs: parallel environments (N).
        obs_shape: shape of one observation as fed to the network.
        action_shape: shape of one action: ``(action_dim,)`` for continuous, ``()`` for discrete.
        action_dtype: ``torch.float32`` for continuous, ``torch.long`` for discrete actions.
        device: where the tensors live.
    """

    def __init__(
        self,
        horizon: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        action_shape: tuple[int, ...],
        action_dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        if horizon < 1 or num_envs < 1:
            raise ValueError(f"horizon and num_envs must be positive, got horizon={horizon}, num_envs={num_envs}")
        self.horizon = horizon
        self.num_envs = num_envs
        self.device = torch.device(device)
        size = (horizon, num_envs)
        kw = {"device": self.device}
        self.observations = torch.zeros(size + tuple(obs_shape), **kw)
        self.actions = torch.zeros(size + tuple(action_shape), dtype=action_dtype, **kw)
        self.log_probs = torch.zeros(size, **kw)
        self.values = torch.zeros(size, **kw)
        self.rewards = torch.zeros(size, **kw)
        self.terminated = torch.zeros(size, dtype=torch.bool, **kw)
        self.dones = torch.zeros(size, dtype=torch.bool, **kw)
        self.next_values = torch.zeros(size, **kw)
        self._step = 0

    @property
    def step(self) -> int:
        """Number of batched steps stored so far."""
        return self._step

    @property
    def full(self) -> bool:
        """Whether ``horizon`` steps are stored."""
        return self._step >= self.horizon

    def add(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        log_prob: torch.Tensor,
        value: torch.Tensor,
        reward: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
        next_value: torch.Tensor,
    ) -> None:
        """Store one batched transition.

        Args:
            obs: network input the action was chosen from, ``[N, *obs_shape]``.
            action: ``[N, *action_shape]``.
            log_prob: log-probability of the action when taken, ``[N]``.
            value: denormalized value of ``obs``, ``[N]``.
            reward: reward that followed, ``[N]``.
            terminated: terminal state reached, ``[N]`` bool.
            truncated: episode cut by a time limit, ``[N]`` bool.
            next_value: denormalized value of the true next state (the final observation where an episode ended),
                ``[N]``.

        Raises:
            RuntimeError: the buffer is full; call ``reset`` after the update.
        """
        if self.full:
            raise RuntimeError(f"RolloutBuffer is full ({self.horizon} steps); call reset() after the update")
        t = self._step
        self.observations[t] = obs
        self.actions[t] = action
        self.log_probs[t] = log_prob
        self.values[t] = value
        self.rewards[t] = reward
        terminated = terminated.to(device=self.device, dtype=torch.bool)
        self.terminated[t] = terminated
        self.dones[t] = terminated | truncated.to(device=self.device, dtype=torch.bool)
        self.next_values[t] = next_value
        self._step += 1

    def reset(self) -> None:
        """Start a new rollout; old contents are overwritten by later ``add`` calls."""
        self._step = 0

    def flatten(self) -> dict[str, torch.Tensor]:
        """Return the stored steps with time and env merged: ``[step * N, ...]``, row ``t * N + n``."""
        t = self._step
        names = ("observations", "actions", "log_probs", "values", "rewards", "terminated", "dones", "next_values")
        return {name: getattr(self, name)[:t].flatten(0, 1) for name in names}

    def minibatch_indices(self, minibatch_size: int, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """Split a random permutation of all stored (time, env) samples into minibatches.

        Every sample appears exactly once per call. The last minibatch is kept even when it is smaller, so no data
        is wasted when ``minibatch_size`` does not divide the batch. A ``minibatch_size`` above the batch clamps.

        Args:
            minibatch_size: samples per minibatch.
            generator: random source for the permutation (a CPU generator).

        Returns:
            Index tensors into the ``flatten()`` rows, on the buffer's device.
        """
        if minibatch_size < 1:
            raise ValueError(f"minibatch_size must be positive, got {minibatch_size}")
        batch = self._step * self.num_envs
        perm = torch.randperm(batch, generator=generator).to(self.device)
        return list(perm.split(min(minibatch_size, max(batch, 1))))
