"""A 2-d point mass in a walled maze with a reward only at the goal: a sparse, long-horizon task for hierarchies."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .base import TensorTask
from .spaces import Box

U_MAZE = (
    "#########",
    "#S......#",
    "#######.#",
    "#G......#",
    "#########",
)


class PointMassMaze(TensorTask):
    """Drive a damped 2-d point mass through a maze to its goal cell, for N environments at once.

    The maze is a grid of square cells of side ``cell_size``, given as rows of text: ``#`` a wall, ``.`` free, ``S``
    the start cell and ``G`` the goal cell (exactly one of each); everything outside the grid is wall. The grid is
    centred on the origin with ``x`` growing along a row and ``y`` growing upwards (the first row is the top one), so
    a layout of ``W`` columns and ``H`` rows spans ``[-W c / 2, W c / 2] x [-H c / 2, H c / 2]``. The default is a
    U-maze: the start and the goal are the two ends of a corridor one cell wide that turns twice, 14 cells (21 units)
    long, so the goal is two cells (3 units) from the start as the crow flies, behind a wall, and 14 along the way.

    Physics per step (``dt`` 0.1): the action ``a`` in ``[-1, 1]^2`` (clipped) is a force,
    ``v' = v + dt (accel a - damping v)``; then each axis moves in turn, ``x`` first: the move ``x + dt v'_x`` is
    kept when the point it leads to is in a free cell, otherwise ``x`` stays and ``v'_x`` becomes 0; then the same
    for ``y`` from the new ``x``. With the defaults (accel 4, damping 2) the top speed is 2 units per second, 0.2 per
    step, less than a cell, so no move jumps over a wall; following the U-maze's corridor takes more than 100 of the
    600 steps of an episode.

    Reward 1 on the step that ends within ``goal_radius`` of the goal cell's centre, and the episode terminates
    there; every other step pays 0. Episodes are truncated after ``max_episode_steps``. So an episode's return is
    its success: 1 when the goal was reached, 0 when not, and the mean return is the success rate. Reset puts the
    mass at rest at a point drawn uniformly within ``start_spread`` of the start cell's centre on each axis, from
    this env's own generator (deterministic per seed). The physics state and the observation are both
    ``[px, py, vx, vy]`` (position first, so a subgoal node reads it from components 0 and 1).

    Args:
        num_envs: number of environments.
        device: device of the state and of every returned tensor.
        dtype: float dtype of the physics, observations and rewards.
        max_episode_steps: truncation limit.
        layout: the maze, one string per row (see above); default the U-maze.
        cell_size: side of a cell.
        accel: acceleration of a full (+-1) action.
        damping: velocity damping rate (per second).
        goal_radius: distance to the goal cell's centre that counts as reaching it.
        start_spread: half-width of the square around the start cell's centre where episodes start.
    """

    def __init__(
        self,
        num_envs: int,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        max_episode_steps: int = 600,
        layout: Sequence[str] = U_MAZE,
        cell_size: float = 1.5,
        accel: float = 4.0,
        damping: float = 2.0,
        goal_radius: float = 0.6,
        start_spread: float = 0.3,
    ) -> None:
        super().__init__(num_envs, device, dtype, max_episode_steps, state_dim=4)
        if cell_size <= 0:
            raise ValueError(f"PointMassMaze: cell_size must be positive, got {cell_size}")
        if not 0 <= start_spread < cell_size / 2:
            raise ValueError(f"PointMassMaze: start_spread must be in [0, cell_size / 2), got {start_spread}")
        if goal_radius <= 0:
            raise ValueError(f"PointMassMaze: goal_radius must be positive, got {goal_radius}")
        if accel <= 0 or damping <= 0 or accel / damping * 0.1 >= cell_size:
            raise ValueError(f"PointMassMaze: accel and damping must be positive with a top speed below one cell "
                             f"per step (accel / damping * 0.1 < cell_size), got accel {accel}, damping {damping}")
        free, start, goal = _parse_layout(layout)
        self.layout = tuple(layout)
        self.free = free.to(self.device)
        self.cell_size = float(cell_size)
        self.accel = float(accel)
        self.damping = float(damping)
        self.goal_radius = float(goal_radius)
        self.start_spread = float(start_spread)
        self.dt = 0.1
        rows, columns = self.free.shape
        self.half_extent = (columns * self.cell_size / 2, rows * self.cell_size / 2)
        self.start = self.cell_centre(*start)
        self.goal = self.cell_centre(*goal)
        speed = self.accel / self.damping
        high = torch.tensor([self.half_extent[0], self.half_extent[1], speed, speed])
        self.observation_space = Box(-high, high)
        self.action_space = Box(-torch.ones(2), torch.ones(2))

    def cell_centre(self, row: int, column: int) -> tuple[float, float]:
        """The ``(x, y)`` centre of the cell in ``row`` (counted from the top) and ``column``."""
        x = (column + 0.5) * self.cell_size - self.half_extent[0]
        y = self.half_extent[1] - (row + 0.5) * self.cell_size
        return x, y

    def is_free(self, x: Tensor, y: Tensor) -> Tensor:
        """Whether each point ``(x, y)`` lies in a free cell (outside the grid is wall)."""
        column = torch.floor((x + self.half_extent[0]) / self.cell_size).long()
        row = torch.floor((self.half_extent[1] - y) / self.cell_size).long()
        rows, columns = self.free.shape
        inside = (column >= 0) & (column < columns) & (row >= 0) & (row < rows)
        return inside & self.free[row.clamp(0, rows - 1), column.clamp(0, columns - 1)]

    def _sample_initial(self, count: int) -> Tensor:
        x, y = self.start
        s = self.start_spread
        position = self._uniform(count, [x - s, y - s], [x + s, y + s])
        return torch.cat((position, torch.zeros((count, 2), device=self.device, dtype=self.dtype)), dim=1)

    def _advance(self, state: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x, y, vx, vy = state.unbind(dim=1)
        force = actions.to(self.dtype).clamp(-1.0, 1.0)
        vx = vx + self.dt * (self.accel * force[:, 0] - self.damping * vx)
        vy = vy + self.dt * (self.accel * force[:, 1] - self.damping * vy)
        moved_x = x + self.dt * vx
        free_x = self.is_free(moved_x, y)
        x = torch.where(free_x, moved_x, x)
        vx = torch.where(free_x, vx, torch.zeros_like(vx))
        moved_y = y + self.dt * vy
        free_y = self.is_free(x, moved_y)
        y = torch.where(free_y, moved_y, y)
        vy = torch.where(free_y, vy, torch.zeros_like(vy))
        reached = torch.hypot(x - self.goal[0], y - self.goal[1]) <= self.goal_radius
        return torch.stack((x, y, vx, vy), dim=1), reached.to(self.dtype), reached

    def _observe(self, state: Tensor) -> Tensor:
        return state.clone()


def _parse_layout(layout: Sequence[str]) -> tuple[Tensor, tuple[int, int], tuple[int, int]]:
    """The free-cell grid ``[rows, columns]`` and the (row, column) of the start and goal cells of a text maze."""
    if not layout or isinstance(layout, str) or not all(isinstance(row, str) for row in layout):
        raise ValueError("PointMassMaze: layout must be a non-empty list of strings, one per row")
    width = len(layout[0])
    if width == 0 or any(len(row) != width for row in layout):
        raise ValueError(f"PointMassMaze: every layout row must have the same non-zero length, got "
                         f"{[len(row) for row in layout]}")
    unknown = set("".join(layout)) - set("#.SG")
    if unknown:
        raise ValueError(f"PointMassMaze: layout may hold only '#', '.', 'S' and 'G', got {sorted(unknown)}")
    marks = {}
    for mark in "SG":
        cells = [(r, c) for r, row in enumerate(layout) for c, char in enumerate(row) if char == mark]
        if len(cells) != 1:
            raise ValueError(f"PointMassMaze: layout needs exactly one {mark!r} cell, got {len(cells)}")
        marks[mark] = cells[0]
    free = torch.tensor([[char != "#" for char in row] for row in layout], dtype=torch.bool)
    return free, marks["S"], marks["G"]
