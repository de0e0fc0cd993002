"""Deploy transforms after a module with state: the transforms apply to its output, the state passes through."""
from __future__ import annotations

import torch


class FirstOutputThen(torch.nn.Module):
    """A module with state, ``(x, state) -> (y, next_state)``, whose ``y`` goes on through ``then``.

    Args:
        module: the module with state.
        then: what its first output goes through (a node's deploy transforms, in link order).
    """

    def __init__(self, module: torch.nn.Module, then: torch.nn.Module) -> None:
        super().__init__()
        self.module = module
        self.then = then

    def forward(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``then(y), next_state``."""
        y, next_state = self.module(x, state)
        return self.then(y), next_state
