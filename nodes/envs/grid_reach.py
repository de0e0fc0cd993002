"""``GridReach``: a batched pixel task: move across a square grid to a goal, seen only as an image."""
from __future__ import annotations

import torch
from torch import Tensor

from .base import TensorTask
from .spaces import Box, Discrete

AGENT_PIXEL = 1.0
GOAL_PIXEL = 0.5


class GridReach(TensorTask):
    """Reach a goal cell on a ``size`` x ``size`` grid, observing it as an image.

    The observation is the grid as a flat ``[channels * size * size]`` image (row-major; a CNN reads it as
    ``[channels, size, size]``). With one channel the agent's cell is 1.0, the goal's 0.5, the rest 0; with two, the
    agent's cell is 1 in channel 0 and the goal's 1 in channel 1 (easier to tell apart). Actions: 0 up, 1 down, 2 left, 3 right. Reward 1 on the
    step that reaches the goal, which ends the episode (terminated), else 0; a move off the grid also ends it
    (terminated, reward 0), so failures end early too and the mean of the first few episodes says little by luck.
    Episodes are truncated after ``max_episode_steps``. Agent and goal start on distinct cells drawn uniformly. A
    shortest path takes at most ``2 * (size - 1)`` steps, so a policy that has learnt to read the image scores 1 per
    episode with the default limit of ``2 * size`` steps; a random walk rarely finds the goal first.

    Args:
        num_envs: number of environments.
        device: device of the state and of every returned tensor.
        dtype: float dtype of the state, observations and rewards.
        max_episode_steps: truncation limit; default ``2 * size``.
        size: the grid's side in cells (84 gives the PPO spec's 84x84 discrete example).
        channels: 1 (agent and goal as two intensities) or 2 (one plane each).
    """

    def __init__(
        self,
        num_envs: int,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        max_episode_steps: int | None = None,
        size: int = 5,
        channels: int = 1,
    ) -> None:
        if size < 2:
            raise ValueError(f"GridReach: size must be at least 2, got {size}")
        if channels not in (1, 2):
            raise ValueError(f"GridReach: channels must be 1 or 2, got {channels}")
        super().__init__(num_envs, device, dtype, max_episode_steps or 2 * size, state_dim=4)
        self.size = size
        self.channels = channels
        values = channels * size * size
        self.observation_space = Box(torch.zeros(values), torch.ones(values))
        self.action_space = Discrete(4)
        self.dt = 0.1

    def _sample_initial(self, count: int) -> Tensor:
        cells = self.size * self.size
        u = self._uniform(count, [0.0, 1.0], [float(cells), float(cells)])
        agent = u[:, 0].floor().clamp(max=cells - 1)
        # An offset in [1, cells - 1] keeps the goal off the agent's cell and uniform over the others.
        goal = torch.remainder(agent + u[:, 1].floor().clamp(max=cells - 1), cells)
        return torch.stack((agent // self.size, agent % self.size, goal // self.size, goal % self.size), dim=1)

    def _advance(self, state: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        row, col, goal_row, goal_col = state.unbind(1)
        moves = torch.tensor([[-1, 0], [1, 0], [0, -1], [0, 1]], device=self.device, dtype=self.dtype)[actions]
        row, col = row + moves[:, 0], col + moves[:, 1]
        off = (row < 0) | (row >= self.size) | (col < 0) | (col >= self.size)
        reached = (row == goal_row) & (col == goal_col)
        # An agent that left the grid is drawn on its last cell (the episode ends there anyway).
        row, col = row.clamp(0, self.size - 1), col.clamp(0, self.size - 1)
        return torch.stack((row, col, goal_row, goal_col), dim=1), reached.to(self.dtype), reached | off

    def _observe(self, state: Tensor) -> Tensor:
        row, col, goal_row, goal_col = state.long().unbind(1)
        cells = self.size * self.size
        image = torch.zeros(state.shape[0], self.channels * cells, device=self.device, dtype=self.dtype)
        rows = torch.arange(state.shape[0], device=self.device)
        if self.channels == 1:
            image[rows, goal_row * self.size + goal_col] = GOAL_PIXEL
        else:
            image[rows, cells + goal_row * self.size + goal_col] = 1.0
        image[rows, row * self.size + col] = AGENT_PIXEL
        return image
