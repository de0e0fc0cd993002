"""``RecurrentCore``: the GRU or LSTM between a policy's encoder and its heads, with its state as one flat tensor."""
from __future__ import annotations

import torch
from torch import nn

RECURRENT_KINDS = ("none", "gru", "lstm")


class RecurrentCore(nn.Module):
    """A GRU or LSTM whose state travels as one tensor ``[B, state_size]`` per batch of envs.

    A flat, batch-first state can be sliced per env, carried in a message, stored per step and reset with a mask,
    whatever the kind: the GRU's ``h [layers, B, H]`` becomes ``[B, layers * H]``; the LSTM's ``(h, c)`` becomes
    ``[B, 2 * layers * H]`` (``h`` first). A zero state starts every episode (CleanRL's ``ppo_atari_lstm``).

    Args:
        kind: ``"gru"`` or ``"lstm"``.
        input_size: features per step from the encoder.
        hidden_size: the core's width (its output size).
        layers: stacked recurrent layers.
    """

    def __init__(self, kind: str, input_size: int, hidden_size: int, layers: int = 1) -> None:
        super().__init__()
        if kind not in ("gru", "lstm"):
            raise ValueError(f"recurrent kind must be 'gru' or 'lstm', got {kind!r}")
        self.kind = kind
        self.hidden_size = hidden_size
        self.layers = layers
        rnn_class = nn.LSTM if kind == "lstm" else nn.GRU
        self.rnn = rnn_class(input_size, hidden_size, num_layers=layers)
        # CleanRL's initialisation: orthogonal weights, zero biases.
        for name, param in self.rnn.named_parameters():
            if "weight" in name:
                nn.init.orthogonal_(param, 1.0)
            else:
                nn.init.zeros_(param)

    @property
    def state_size(self) -> int:
        """Size of one env's flat state."""
        return (2 if self.kind == "lstm" else 1) * self.layers * self.hidden_size

    def initial_state(self, batch: int, device: torch.device | None = None) -> torch.Tensor:
        """The zero state of ``batch`` envs, ``[batch, state_size]``."""
        return torch.zeros(batch, self.state_size, device=device)

    def _unpack(self, state: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        parts = state.reshape(state.shape[0], -1, self.hidden_size).transpose(0, 1).contiguous()
        if self.kind == "lstm":
            return parts[: self.layers], parts[self.layers:]
        return parts

    def _pack(self, state: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        parts = torch.cat(state) if isinstance(state, tuple) else state
        return parts.transpose(0, 1).reshape(parts.shape[1], -1)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step for a batch: ``x [B, input_size]``, ``state [B, state_size]`` -> ``(out [B, H], next state)``."""
        out, next_state = self.rnn(x[None], self._unpack(state))
        return out[0], self._pack(next_state)

    def unroll(self, x: torch.Tensor, state: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        """Run sequences, zeroing the state where an episode starts.

        Args:
            x: features ``[L, B, input_size]``.
            state: the state before the first step, ``[B, state_size]`` (already zero where step 0 starts an
                episode).
            starts: ``[L, B]`` bool, step ``t`` begins a new episode (the previous step ended one); the state is
                zeroed before step ``t``. ``starts[0]`` is ignored: ``state`` is the state step 0 acts with.

        Returns:
            The outputs ``[L, B, H]``.
        """
        # One call of the RNN per stretch of steps without an episode start in the batch: the state is zeroed only
        # at those starts, so the stretches between them run at the RNN's own speed.
        length = x.shape[0]
        restarts = (starts[1:].any(dim=1).nonzero().flatten() + 1).tolist()
        bounds = [0, *restarts, length]
        keep = (~starts).to(x.dtype)[..., None]
        outputs = []
        for begin, end in zip(bounds[:-1], bounds[1:]):
            if begin > 0:
                state = state * keep[begin]
            out, packed = self.rnn(x[begin:end], self._unpack(state))
            state = self._pack(packed)
            outputs.append(out)
        return torch.cat(outputs)
