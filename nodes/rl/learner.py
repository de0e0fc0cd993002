"""``Learner``: the trainer's own actor-critic, optimizer and PPO update, built from a ``Model`` message."""
from __future__ import annotations

import copy
import time
from typing import Any

import torch

from dnne.runtime.checkpoint import copy_state

from ..flat_adam import FlatAdam
from ..types import ModelSpec
from .actor_critic import ActorCritic
from .ppo import PPOConfig, PPOUpdate
from .rollout import RolloutBuffer
from .sequences import SequenceSampler
from .trajectory import Trajectory


class Learner:
    """The network the trainer trains; it shares no tensor with any actor (they get copies of its weights).

    Owns the input statistics (updated from the raw observations of each rollout, then sent with the weights, so
    actors normalise as the learner does) and, with ``normalize_value``, the value statistics.

    Args:
        spec: the architecture and initial weights (from the agent's ``model`` output).
        normalize_value: train the critic on running-normalised returns.
        device: where the network and the rollouts live.
        learning_rate: the optimizer's initial learning rate.
        config: the PPO update's hyperparameters.
        generator: random source of the minibatch permutations.
    """

    def __init__(self, spec: ModelSpec, normalize_value: bool, device: torch.device, learning_rate: float,
                 config: PPOConfig, generator: torch.Generator) -> None:
        self.device = device
        self.network = ActorCritic(**dict(spec.architecture, normalize_value=normalize_value)).to(device)
        initial = {name: value for name, value in spec.weights.items() if not name.startswith("value_normalizer.")}
        missing, unexpected = self.network.load_state_dict(initial, strict=False)
        if unexpected or any(not name.startswith("value_normalizer.") for name in missing):
            raise ValueError(f"the model's weights do not fit its architecture: missing {missing}, unexpected "
                             f"{unexpected}")
        # torch's foreach Adam, bit for bit, stepped over one flat buffer (FlatAdam): a quarter of foreach's time on
        # these small networks, where it costs a Python loop per parameter; torch's own step wherever FlatAdam cannot
        self.optimizer = FlatAdam(self.network.parameters(), lr=learning_rate, eps=1e-5, foreach=True)
        self.update = PPOUpdate(self.network, self.optimizer, config, generator)
        self.version = 0

    def weights(self) -> dict[str, torch.Tensor]:
        """A copy of the network's ``state_dict`` (parameters and statistics) to send: later updates leave it be."""
        return {name: value.detach().clone() for name, value in self.network.state_dict().items()}

    def state_dict(self) -> dict[str, Any]:
        """Copies of the network's and the optimizer's state (``learner``, ``optimizer``), for a checkpoint (tensors
        cloned, containers rebuilt: ``copy_state``, about a fifth of ``copy.deepcopy``'s time on this state)."""
        return {"learner": self.weights(), "optimizer": copy_state(self.optimizer.state_dict())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        self.network.load_state_dict(state["learner"])
        self.optimizer.load_state_dict(state["optimizer"])

    def train(self, trajectories: list[Trajectory], max_lag: int) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
        """Bootstrap the rollout, refresh the input statistics, run one PPO update; the update's statistics (lag
        included) and the new weights.

        Args:
            trajectories: every env group's full rollout (filled by the trainer, values from the agent).
            max_lag: the largest lag the acting rule allows; the lag histogram has a bin for each lag up to it.
        """
        started = time.perf_counter()
        rollout = self._bootstrapped(trajectories)
        lags = torch.cat([(self.version - t.versions)[:, None].expand(-1, t.num_envs) for t in trajectories], dim=1)
        self.network.update_obs_stats(torch.cat([t.next_observations.flatten(0, 1) for t in trajectories]))
        stats = self.update.run(rollout, lags, self.sampler(rollout, trajectories))
        self.version += 1
        stats.update(lag_stats(lags.flatten(), max_lag))
        stats["update_time_s"] = time.perf_counter() - started
        return stats, self.weights()

    def sampler(self, rollout: RolloutBuffer, trajectories: list[Trajectory]) -> SequenceSampler | None:
        """The sequence sampler of a recurrent network's rollout (``None``: flat minibatches)."""
        if not self.network.recurrent:
            return None
        states = torch.cat([_states(t) for t in trajectories], dim=1)
        return SequenceSampler(rollout.observations, rollout.actions, states, rollout.dones,
                               self.update.config.seq_length)

    @torch.no_grad()
    def _bootstrapped(self, trajectories: list[Trajectory]) -> RolloutBuffer:
        """Fill every step's next value: the agent's value of the next observation inside the rollout, the
        learner's own value of the observation after the last step and of truncated episodes' final observations
        (normalised with the statistics the rollout was acted with); then all groups side by side. A recurrent
        network values them with the state its core reached after the step (zeroed for the observation after the
        last step where that step ended an episode)."""
        network = self.network
        for trajectory in trajectories:
            buffer = trajectory.buffer
            last_state = None
            if network.recurrent:
                after = network.next_state(buffer.observations[-1], _states(trajectory)[-1])
                last_state = after * (~buffer.dones[-1]).to(after.dtype)[:, None]
            last = network.value(network.normalize_obs(trajectory.next_observations[-1]), last_state)
            following = torch.cat([buffer.values[1:], last[None]])
            truncated = trajectory.truncated
            if truncated.any():
                final_state = None
                if network.recurrent:
                    final_state = network.next_state(buffer.observations[truncated], _states(trajectory)[truncated])
                finals = network.value(network.normalize_obs(trajectory.final_observations[truncated]), final_state)
                following = following.clone()
                following[truncated] = finals
            buffer.next_values.copy_(following)
        buffers = [t.buffer for t in trajectories]
        if len(buffers) == 1:
            return buffers[0]
        merged = copy.copy(buffers[0])
        for name in ("observations", "actions", "log_probs", "values", "rewards", "terminated", "dones",
                     "next_values"):
            setattr(merged, name, torch.cat([getattr(b, name) for b in buffers], dim=1))
        merged.num_envs = sum(b.num_envs for b in buffers)
        return merged


def _states(trajectory: Trajectory) -> torch.Tensor:
    if trajectory.states is None:
        raise ValueError("the network is recurrent but the agent's policy outputs carry no state")
    return trajectory.states


def lag_stats(lag: torch.Tensor, max_lag: int) -> dict[str, float]:
    """Mean and max of the per-transition lags, and the fraction of transitions at each lag ``0..max_lag``
    (``lag_<k>``; a flat histogram, so metrics.jsonl and TensorBoard both take it)."""
    counts = torch.bincount(lag.clamp(min=0), minlength=max_lag + 1).double() / max(lag.numel(), 1)
    stats = {"lag_mean": float(lag.double().mean()), "lag_max": float(lag.max())}
    stats.update({f"lag_{k}": float(counts[k]) for k in range(max_lag + 1)})
    return stats
