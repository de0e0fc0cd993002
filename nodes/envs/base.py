"""The batched environment contract every backend implements, and the shared machinery of the built-in tensor tasks."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .spaces import Box, Discrete


@dataclass(frozen=True)
class StepResult:
    """What one batched step returns; every tensor is freshly allocated and has ``num_envs`` rows unless noted.

    Args:
        observations: ``[N, obs_dim]`` observations to act on next, taken after the automatic reset of ended episodes.
        rewards: ``[N]`` rewards of the transition just taken.
        terminated: ``[N]`` bool, the episode reached a terminal state (no bootstrapping past it).
        truncated: ``[N]`` bool, the episode was cut by a time limit; never true where ``terminated`` is.
        final_observations: ``[N, obs_dim]`` the true next state: the pre-reset observation where an episode ended,
            otherwise equal to ``observations``. Bootstrapping a truncated episode must use this, not ``observations``.
        episode_returns: ``[K]`` undiscounted returns of the K episodes that ended in this step (K may be 0).
        episode_lengths: ``[K]`` long, the lengths in steps of those episodes, in the same order.
    """

    observations: Tensor
    rewards: Tensor
    terminated: Tensor
    truncated: Tensor
    final_observations: Tensor
    episode_returns: Tensor
    episode_lengths: Tensor


class BatchedEnv(ABC):
    """``num_envs`` copies of one task stepped together, with automatic reset in the same step.

    Subclasses set the attributes below in ``__init__``.

    Args:
        num_envs: number of environments N stepped together.
        device: device of every returned tensor.
        observation_space: space of one observation row.
        action_space: space of one action row (``Box`` actions are ``[N, dim]`` float, ``Discrete`` are ``[N]`` int).
        dt: simulated seconds per step, used to pace inference runs at real time (0.0 when unknown).
    """

    num_envs: int
    device: torch.device
    observation_space: Box
    action_space: Box | Discrete
    dt: float

    @abstractmethod
    def reset(self, seed: int | None = None) -> Tensor:
        """Reset every environment.

        Args:
            seed: seeds the environment's random generator so that a run is reproducible; ``None`` continues it.

        Returns:
            The first observations, ``[N, obs_dim]``.
        """

    @abstractmethod
    def step(self, actions: Tensor) -> StepResult:
        """Apply one action per environment, resetting the environments whose episode ended.

        Args:
            actions: ``[N, dim]`` float for a ``Box`` action space, ``[N]`` (or ``[N, 1]``) integer for ``Discrete``.

        Returns:
            The step's transition, see ``StepResult``.

        Raises:
            ValueError: the actions have the wrong shape or dtype, or contain NaN or infinity.
        """

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the environments bit for bit after ``load_state_dict``.

        Raises:
            NotImplementedError: the backend cannot capture its state (an external simulator, subprocesses).
        """
        raise NotImplementedError(f"{type(self).__name__} does not support exact resume: it cannot save its state")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state taken by ``state_dict``.

        Args:
            state: the dict ``state_dict`` returned.

        Raises:
            NotImplementedError: the backend cannot restore its state.
        """
        raise NotImplementedError(f"{type(self).__name__} does not support exact resume: it cannot load a state")

    @property
    def supports_state(self) -> bool:
        """Whether ``state_dict`` and ``load_state_dict`` are implemented."""
        return type(self).state_dict is not BatchedEnv.state_dict

    def close(self) -> None:
        """Release simulator resources and worker processes; the default has nothing to release."""

    def check_actions(self, actions: Tensor) -> Tensor:
        """Validate a batch of actions against the action space and move it to the env device.

        Out-of-range ``Box`` actions are allowed (each task clips them as its reference does); out-of-range discrete
        actions are not.

        Args:
            actions: the batch passed to ``step``.

        Returns:
            The actions, detached, on ``self.device``: ``[N]`` long for ``Discrete``, ``[N, dim]`` for ``Box``.

        Raises:
            ValueError: wrong type, shape or dtype, a discrete action out of range, or a NaN or infinite value.
        """
        if not isinstance(actions, Tensor):
            raise ValueError(f"{self._where()}: expected actions as a torch.Tensor, got {type(actions).__name__}")
        n = self.num_envs
        if isinstance(self.action_space, Discrete):
            if actions.shape not in ((n,), (n, 1)):
                raise self._unexpected(f"discrete actions of shape [{n}] or [{n}, 1]", actions)
            if actions.is_floating_point() or actions.is_complex() or actions.dtype == torch.bool:
                raise self._unexpected("discrete actions of an integer dtype (torch.long)", actions)
            actions = actions.detach().reshape(n).to(self.device, torch.long)
            bad = (actions < 0) | (actions >= self.action_space.n)
            if bool(bad.any()):
                raise ValueError(
                    f"{self._where()}: discrete actions must be in [0, {self.action_space.n}), got "
                    f"{actions[bad][:5].tolist()} in env(s) {bad.nonzero().flatten()[:5].tolist()}"
                )
            return actions
        dim = self.action_space.dim
        if actions.shape != (n, dim):
            raise self._unexpected(f"continuous actions of shape [{n}, {dim}]", actions)
        if not actions.is_floating_point():
            raise self._unexpected("continuous actions of a float dtype", actions)
        actions = actions.detach().to(self.device)
        if not _all_finite(actions):
            bad_envs = (~torch.isfinite(actions).all(dim=1)).nonzero().flatten()[:5].tolist()
            raise ValueError(f"{self._where()}: actions contain NaN or infinity in env(s) {bad_envs}")
        return actions

    def _where(self) -> str:
        """Where an action error is raised, for its message (built only then: ``check_actions`` runs every step)."""
        return f"{type(self).__name__}.step"

    def _unexpected(self, expected: str, actions: Tensor) -> ValueError:
        """The error for a batch of actions that is not ``expected``, with its shape and dtype."""
        got = f"got shape {list(actions.shape)} dtype {actions.dtype}"
        return ValueError(f"{self._where()}: expected {expected}, {got}")


def _all_finite(actions: Tensor) -> bool:
    """Whether every value of ``actions`` is finite: one numpy call on a CPU float32 or float64 batch (torch takes
    three, a step's largest cost outside a simulator of small envs), torch's own test on any other."""
    if actions.device.type == "cpu" and actions.dtype in (torch.float32, torch.float64):
        return bool(np.isfinite(actions.numpy()).all())
    return bool(torch.isfinite(actions).all())


class RunningEpisodes:
    """Return and length of the episode each environment is in, yielding those of the episodes that end.

    Args:
        num_envs: number of environments.
        device: device of the counters.
        dtype: dtype of the returns.
    """

    def __init__(self, num_envs: int, device: torch.device, dtype: torch.dtype) -> None:
        self.returns = torch.zeros(num_envs, device=device, dtype=dtype)
        self.lengths = torch.zeros(num_envs, device=device, dtype=torch.long)

    def reset(self) -> None:
        """Start a new episode in every environment."""
        self.returns = torch.zeros_like(self.returns)
        self.lengths = torch.zeros_like(self.lengths)

    def update(self, rewards: Tensor, done: Tensor, any_done: bool | None = None) -> tuple[Tensor, Tensor]:
        """Add one step's rewards and close the episodes that ended.

        Args:
            rewards: ``[N]`` rewards of the step.
            done: ``[N]`` bool, terminated or truncated.
            any_done: whether ``done`` holds a true value, where the caller knows it without asking the device
                (most steps end no episode, and then the counters need no masking).

        Returns:
            ``([K] returns, [K] lengths)`` of the ended episodes, in env order.
        """
        returns = self.returns + rewards.to(self.returns.dtype)
        lengths = self.lengths + 1
        if any_done is False:
            self.returns, self.lengths = returns, lengths
            return returns[:0], lengths[:0]
        self.returns = returns.masked_fill(done, 0.0)
        self.lengths = lengths.masked_fill(done, 0)
        return returns[done], lengths[done]

    def state_dict(self) -> dict[str, Tensor]:
        """The running counters, cloned."""
        return {"returns": self.returns.clone(), "lengths": self.lengths.clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore counters taken by ``state_dict``.

        Args:
            state: the dict ``state_dict`` returned.
        """
        self.returns = _restore(state["returns"], self.returns, "episode returns")
        self.lengths = _restore(state["lengths"], self.lengths, "episode lengths")


class TensorTask(BatchedEnv):
    """A task whose physics is batched tensor code: the shared reset, autoreset, counters, seeding and resume.

    Subclasses give the physics as three pure functions of the state ``[N, state_dim]``; the state is replaced, never
    written in place, so a returned tensor is never changed later. Initial states are drawn on the CPU, from a CPU
    generator, and moved to the device: a seed gives the same states on every device, and a checkpoint's generator
    state resumes on any device.

    Args:
        num_envs: number of environments.
        device: device of the state and of every returned tensor.
        dtype: float dtype of the physics, observations and rewards.
        max_episode_steps: episodes are truncated after this many steps.
        state_dim: number of components of one environment's physics state.
    """

    def __init__(
        self,
        num_envs: int,
        device: str | torch.device,
        dtype: torch.dtype,
        max_episode_steps: int,
        state_dim: int,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"{type(self).__name__}: num_envs must be at least 1, got {num_envs}")
        if not dtype.is_floating_point:
            raise ValueError(f"{type(self).__name__}: dtype must be a float dtype, got {dtype}")
        if max_episode_steps < 1:
            raise ValueError(f"{type(self).__name__}: max_episode_steps must be at least 1, got {max_episode_steps}")
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.dtype = dtype
        self.max_episode_steps = max_episode_steps
        self.state_dim = state_dim
        self._generator = torch.Generator()
        self._generator.seed()
        self._state: Tensor | None = None
        self._steps = torch.zeros(num_envs, device=self.device, dtype=torch.long)
        self._episodes = RunningEpisodes(num_envs, self.device, dtype)

    @abstractmethod
    def _sample_initial(self, count: int) -> Tensor:
        """Draw ``count`` initial states ``[count, state_dim]`` from ``self._generator``."""

    @abstractmethod
    def _advance(self, state: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One step of physics from checked actions: ``(next_state, rewards, terminated)``, all new tensors."""

    @abstractmethod
    def _observe(self, state: Tensor) -> Tensor:
        """Observations ``[N, obs_dim]`` of a state, as a new tensor."""

    def _uniform(self, count: int, low: list[float], high: list[float]) -> Tensor:
        """``count`` rows drawn uniformly per component between ``low`` and ``high`` (``low + (high - low) * u``),
        computed on the CPU (the same bits on every device) and moved to the env's device."""
        lo = torch.tensor(low, dtype=self.dtype)
        hi = torch.tensor(high, dtype=self.dtype)
        u = torch.rand((count, len(low)), generator=self._generator, dtype=self.dtype)
        return (lo + (hi - lo) * u).to(self.device)

    def reset(self, seed: int | None = None) -> Tensor:
        """Reset every environment; see ``BatchedEnv.reset``."""
        if seed is not None:
            self._generator.manual_seed(seed)
        self._state = self._sample_initial(self.num_envs)
        self._steps = torch.zeros_like(self._steps)
        self._episodes.reset()
        return self._observe(self._state)

    def step(self, actions: Tensor) -> StepResult:
        """Advance every environment one step and reset those whose episode ended; see ``BatchedEnv.step``."""
        state = self._require_state()
        actions = self.check_actions(actions)
        next_state, rewards, terminated = self._advance(state, actions)
        steps = self._steps + 1
        truncated = (steps >= self.max_episode_steps) & ~terminated
        done = terminated | truncated
        final_observations = self._observe(next_state)
        episode_returns, episode_lengths = self._episodes.update(rewards, done)
        if episode_lengths.numel() > 0:
            # Only the ended envs draw new states, so the generator stream depends on the trajectory, not on N.
            ended = done.nonzero().flatten()
            next_state = next_state.index_put((ended,), self._sample_initial(ended.numel()))
            steps = steps.masked_fill(done, 0)
            observations = self._observe(next_state)
        else:
            observations = final_observations.clone()
        self._state = next_state
        self._steps = steps
        return StepResult(
            observations=observations,
            rewards=rewards,
            terminated=terminated,
            truncated=truncated,
            final_observations=final_observations,
            episode_returns=episode_returns,
            episode_lengths=episode_lengths,
        )

    def current_observations(self) -> Tensor:
        """The observations of the current state (what the last reset or step returned as ``observations``)."""
        return self._observe(self._require_state())

    def get_state(self) -> Tensor:
        """A copy of the physics state ``[N, state_dim]``."""
        return self._require_state().clone()

    def set_state(self, state: Tensor) -> None:
        """Put every environment in a given physics state, keeping step counters and episode statistics.

        Args:
            state: ``[N, state_dim]`` physics state, in the layout ``get_state`` returns.
        """
        if tuple(state.shape) != (self.num_envs, self.state_dim):
            raise ValueError(
                f"{type(self).__name__}.set_state: expected shape [{self.num_envs}, {self.state_dim}], "
                f"got {list(state.shape)}"
            )
        self._state = state.detach().to(self.device, self.dtype).clone()

    def state_dict(self) -> dict[str, Any]:
        """Physics state, step counters, running episode statistics and generator state, all cloned."""
        return {
            "state": self._require_state().clone(),
            "steps": self._steps.clone(),
            "episodes": self._episodes.state_dict(),
            "generator": self._generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state taken by ``state_dict`` of an env with the same ``num_envs``, on any device.

        Args:
            state: the dict ``state_dict`` returned.
        """
        self.set_state(state["state"])
        self._steps = _restore(state["steps"], self._steps, "step counters")
        self._episodes.load_state_dict(state["episodes"])
        self._generator.set_state(state["generator"])

    def _require_state(self) -> Tensor:
        if self._state is None:
            raise RuntimeError(f"{type(self).__name__}: call reset() before step() or get_state()")
        return self._state


def _restore(saved: Tensor, like: Tensor, what: str) -> Tensor:
    """``saved`` moved to ``like``'s device and dtype, after checking it has ``like``'s shape."""
    if saved.shape != like.shape:
        raise ValueError(f"cannot load {what}: saved shape {list(saved.shape)}, this env has {list(like.shape)}")
    return saved.to(like.device, like.dtype).clone()
