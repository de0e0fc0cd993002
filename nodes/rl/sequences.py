"""``SequenceSampler``: a recurrent policy's rollout cut into ``seq_length`` chunks of whole env sequences, served as
minibatches of chunks for truncated backpropagation through time."""
from __future__ import annotations

import math

import torch

from .actor_critic import ActorCritic


class SequenceSampler:
    """Minibatches of env sequences for a recurrent PPO update.

    Each env's ``T`` steps are cut into ``ceil(T / L)`` chunks of ``L = min(seq_length, T)`` steps (the last one
    padded and masked when ``L`` does not divide ``T``). A chunk starts from the state its first step was acted with
    (stored by the agent), and the state is zeroed inside it where an episode starts, as when acting; so before any
    update the re-evaluated log-probs and values are the rollout's own. A minibatch is ``minibatch_size // L`` chunks
    (at least one), drawn from a random permutation; each step appears exactly once per epoch.

    Args:
        observations: network inputs ``[T, N, ...]``.
        actions: ``[T, N, ...]``.
        states: the state each step was acted with, ``[T, N, state_size]``.
        dones: ``[T, N]`` bool, an episode ended at the step.
        seq_length: steps per chunk (L).
    """

    def __init__(self, observations: torch.Tensor, actions: torch.Tensor, states: torch.Tensor, dones: torch.Tensor,
                 seq_length: int) -> None:
        horizon, num_envs = dones.shape
        length = max(1, min(seq_length, horizon))
        chunks = math.ceil(horizon / length)
        padded = chunks * length
        self.length = length
        self.num_chunks = chunks * num_envs
        # starts[t]: step t begins an episode, i.e. step t - 1 ended one; step 0 starts from its stored state.
        starts = torch.zeros_like(dones)
        starts[1:] = dones[:-1]
        time = torch.arange(padded, device=dones.device)
        rows = (time[:, None] * num_envs + torch.arange(num_envs, device=dones.device)).clamp(max=horizon * num_envs - 1)
        self.observations = _chunked(observations, padded, length)
        self.actions = _chunked(actions, padded, length)
        self.starts = _chunked(starts, padded, length)
        self.mask = _chunked((time < horizon)[:, None].expand(padded, num_envs), padded, length)
        self.rows = _chunked(rows, padded, length)
        self.initial_states = states[::length].flatten(0, 1)  # chunk c of env n is column c * N + n

    def minibatches(self, minibatch_size: int, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """The chunk ids of each minibatch of one epoch (``minibatch_size // L`` chunks each, at least one)."""
        per_batch = max(1, minibatch_size // self.length)
        perm = torch.randperm(self.num_chunks, generator=generator).to(self.rows.device)
        return list(perm.split(per_batch))

    def everything(self) -> torch.Tensor:
        """Every chunk."""
        return torch.arange(self.num_chunks, device=self.rows.device)

    def evaluate(self, model: ActorCritic, chunks: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Re-evaluate the chunks ``chunks`` with autograd: ``(rows, log_prob, entropy, value)``, each ``[K]`` over
        their K unpadded steps; ``rows`` index the rollout's ``flatten()`` rows (``t * N + n``) in the same order."""
        log_prob, entropy, value = model.evaluate_sequences(
            self.observations[:, chunks], self.actions[:, chunks], self.initial_states[chunks],
            self.starts[:, chunks])
        mask = self.mask[:, chunks]
        return self.rows[:, chunks][mask], log_prob[mask], entropy[mask], value[mask]


def _chunked(x: torch.Tensor, padded: int, length: int) -> torch.Tensor:
    """``[T, N, ...]`` padded with zeros to ``padded`` steps and cut into ``[length, chunks * N, ...]`` (column
    ``c * N + n`` is chunk ``c`` of env ``n``)."""
    horizon, num_envs = x.shape[:2]
    if padded > horizon:
        x = torch.cat([x, x.new_zeros((padded - horizon, *x.shape[1:]))])
    chunks = padded // length
    x = x.reshape(chunks, length, num_envs, *x.shape[2:]).transpose(0, 1)
    return x.reshape(length, chunks * num_envs, *x.shape[3:])
