"""``Trajectory``: one env group's rollout as the trainer collects it, before the learner bootstraps it."""
from __future__ import annotations

import copy

import torch

from ..types import Dones, PolicyOutput
from .rollout import RolloutBuffer


class Trajectory:
    """A ``RolloutBuffer`` and what the learner needs besides it: the raw observations that followed each step
    (for its input statistics and the bootstrap at the horizon end), the final observations of truncated episodes
    (their bootstrap), the version of the policy that acted at each step (its lag), and for a recurrent policy the
    state each step was acted with (the learner rebuilds its sequences and bootstrap states from them).

    Values that come from messages (the agent's value of each observation) are stored as they came; values of
    observations no agent acted on are left to the learner's own network (``Learner``).

    Args:
        horizon: steps per rollout (T).
        first: the first policy output, which sizes the storage.
        device: where the tensors live (the learner's device).
    """

    def __init__(self, horizon: int, first: PolicyOutput, device: torch.device) -> None:
        action, obs = first.action, first.observation
        num_envs = action.shape[0]
        self.buffer = RolloutBuffer(horizon, num_envs, tuple(obs.shape[1:]), tuple(action.shape[1:]), action.dtype,
                                    device)
        shape = (horizon, num_envs, *obs.shape[1:])
        self.next_observations = torch.zeros(shape, device=device)
        self.final_observations = torch.zeros(shape, device=device)
        self.acted_by = [0] * horizon
        """The version of the policy that acted at each step (a list: one Python int a step costs no tensor write)."""
        state = first.state
        self.states = None if state is None else torch.zeros((horizon, num_envs, state.shape[1]), device=device)
        self._unknown = torch.zeros((), device=device)  # next values are the learner's to fill

    @property
    def truncated(self) -> torch.Tensor:
        """Steps whose episode a time limit cut (ended, not terminated), ``[T, N]`` bool."""
        buffer = self.buffer
        return buffer.dones & ~buffer.terminated

    @property
    def versions(self) -> torch.Tensor:
        """The version of the policy that acted at each step, ``[T]``."""
        return torch.tensor(self.acted_by, dtype=torch.long, device=self.buffer.device)

    @property
    def full(self) -> bool:
        """Whether the rollout holds ``horizon`` steps."""
        return self.buffer.full

    @property
    def num_envs(self) -> int:
        """Environments of the group (N)."""
        return self.buffer.num_envs

    def add(self, output: PolicyOutput, rewards: torch.Tensor, dones: Dones, states: torch.Tensor) -> None:
        """Store one transition: the decision, what followed it, and the observation acted on next."""
        buffer = self.buffer
        t = buffer.step
        device = buffer.device
        self.next_observations[t] = states.to(device, torch.float32)
        self.final_observations[t] = dones.final_observations.to(device, torch.float32)
        self.acted_by[t] = output.version
        if self.states is not None:
            if output.state is None:
                raise ValueError("a recurrent policy's output came without its state")
            self.states[t] = output.state.to(device)
        buffer.add(output.observation, output.action, output.log_prob, output.value, rewards.to(device, torch.float32),
                   dones.terminated, dones.truncated, self._unknown)

    def copy(self) -> Trajectory:
        """A copy that collection may go on beside (the async learner trains on it)."""
        other = copy.copy(self)
        other.buffer = copy.copy(self.buffer)
        for name in ("observations", "actions", "log_probs", "values", "rewards", "terminated", "dones", "next_values"):
            setattr(other.buffer, name, getattr(self.buffer, name).clone())
        for name in ("next_observations", "final_observations"):
            setattr(other, name, getattr(self, name).clone())
        other.acted_by = list(self.acted_by)
        other.states = None if self.states is None else self.states.clone()
        return other

    def reset(self) -> None:
        """Start the next rollout."""
        self.buffer.reset()
