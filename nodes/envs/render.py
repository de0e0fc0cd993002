"""Frames of the built-in torch tasks, drawn from env 0's observation with Pillow, and a recording wrapper."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from torch import Tensor

from .base import BatchedEnv, StepResult
from .cartpole import Cartpole
from .cartpole_isaac import CartpoleIsaac
from .grid_reach import GridReach
from .novel import CartpoleNoVel, PendulumNoVel
from .pendulum import Pendulum
from .point_mass import PointMassNav
from .point_maze import PointMassMaze
from .recorder import EpisodeRecorder

WIDTH, HEIGHT = 480, 320
Renderer = Callable[[BatchedEnv, np.ndarray], np.ndarray]


def _canvas() -> Any:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (WIDTH, HEIGHT), (255, 255, 255))
    return image, ImageDraw.Draw(image)


def _cart(x: float, theta: float, x_limit: float, pole_length: float) -> np.ndarray:
    """A cart at ``x`` on a track of half-width ``x_limit`` with a pole at ``theta`` from upright."""
    image, draw = _canvas()
    scale = WIDTH / (2 * x_limit * 1.2)
    ground = HEIGHT * 0.7
    cx = WIDTH / 2 + x * scale
    draw.line((0, ground, WIDTH, ground), fill=(0, 0, 0), width=1)
    draw.rectangle((cx - 25, ground - 15, cx + 25, ground + 15), fill=(40, 40, 40))
    tip = (cx + math.sin(theta) * pole_length * scale, ground - 15 - math.cos(theta) * pole_length * scale)
    draw.line((cx, ground - 15, *tip), fill=(202, 152, 101), width=8)
    draw.ellipse((cx - 4, ground - 19, cx + 4, ground - 11), fill=(129, 132, 203))
    return np.asarray(image)


def cartpole(env: BatchedEnv, obs: np.ndarray) -> np.ndarray:
    """Gymnasium's CartPole picture: observation ``(x, x_dot, theta, theta_dot)``."""
    return _cart(float(obs[0]), float(obs[2]), 2.4, 1.0)


def cartpole_isaac(env: BatchedEnv, obs: np.ndarray) -> np.ndarray:
    """Isaac Gym's Cartpole: observation ``(cart position, cart velocity, pole angle, pole velocity)``."""
    return _cart(float(obs[0]), float(obs[2]), float(getattr(env, "reset_dist", 3.0)), 1.0)


def pendulum(env: BatchedEnv, obs: np.ndarray) -> np.ndarray:
    """A pendulum from its observation ``(cos theta, sin theta, theta_dot)``, theta 0 upright."""
    image, draw = _canvas()
    theta = math.atan2(float(obs[1]), float(obs[0]))
    cx, cy, length = WIDTH / 2, HEIGHT / 2, HEIGHT * 0.4
    tip = (cx + math.sin(theta) * length, cy - math.cos(theta) * length)
    draw.line((cx, cy, *tip), fill=(204, 77, 77), width=14)
    draw.ellipse((cx - 6, cy - 6, cx + 6, cy + 6), fill=(0, 0, 0))
    return np.asarray(image)


def point_mass(env: BatchedEnv, obs: np.ndarray) -> np.ndarray:
    """The arena, the goal and the point: observation ``(position, velocity, goal - position)``."""
    image, draw = _canvas()
    size = float(getattr(env, "size", 5.0))
    scale = (HEIGHT - 20) / (2 * size)

    def at(x: float, y: float) -> tuple[float, float]:
        return WIDTH / 2 + x * scale, HEIGHT / 2 - y * scale

    draw.rectangle((*at(-size, size), *at(size, -size)), outline=(0, 0, 0), width=2)
    goal = at(float(obs[0] + obs[4]), float(obs[1] + obs[5]))
    radius = float(getattr(env, "goal_radius", 0.5)) * scale
    draw.ellipse((goal[0] - radius, goal[1] - radius, goal[0] + radius, goal[1] + radius), fill=(120, 200, 120))
    point = at(float(obs[0]), float(obs[1]))
    draw.ellipse((point[0] - 6, point[1] - 6, point[0] + 6, point[1] + 6), fill=(50, 80, 200))
    return np.asarray(image)


def cartpole_no_vel(env: BatchedEnv, obs: np.ndarray) -> np.ndarray:
    """CartPole without velocities: observation ``(x, theta)``."""
    return _cart(float(obs[0]), float(obs[1]), 2.4, 1.0)


def point_maze(env: BatchedEnv, obs: np.ndarray) -> np.ndarray:
    """The maze's walls, the goal cell and the point: observation ``(x, y, vx, vy)``."""
    assert isinstance(env, PointMassMaze)
    image, draw = _canvas()
    half_x, half_y = env.half_extent
    scale = min((WIDTH - 20) / (2 * half_x), (HEIGHT - 20) / (2 * half_y))

    def at(x: float, y: float) -> tuple[float, float]:
        return WIDTH / 2 + x * scale, HEIGHT / 2 - y * scale

    free = env.free.cpu()
    half_cell = env.cell_size / 2
    for row in range(free.shape[0]):
        for column in range(free.shape[1]):
            if not bool(free[row, column]):
                x, y = env.cell_centre(row, column)
                draw.rectangle((*at(x - half_cell, y + half_cell), *at(x + half_cell, y - half_cell)),
                               fill=(60, 60, 60))
    goal, radius = at(*env.goal), env.goal_radius * scale
    draw.ellipse((goal[0] - radius, goal[1] - radius, goal[0] + radius, goal[1] + radius), fill=(120, 200, 120))
    point = at(float(obs[0]), float(obs[1]))
    draw.ellipse((point[0] - 6, point[1] - 6, point[0] + 6, point[1] + 6), fill=(50, 80, 200))
    return np.asarray(image)


def grid_reach(env: BatchedEnv, obs: np.ndarray) -> np.ndarray:
    """The observed image itself, its channels as colours (one channel: grey levels), scaled up to the frame."""
    assert isinstance(env, GridReach)
    planes = np.asarray(obs, dtype=np.float32).reshape(env.channels, env.size, env.size)
    rgb = np.zeros((env.size, env.size, 3), dtype=np.float32)
    if env.channels == 1:
        rgb[:] = planes[0][:, :, None]
    else:
        rgb[:, :, 2], rgb[:, :, 1] = planes[0], planes[1]
    cell = max(1, min(WIDTH, HEIGHT) // env.size)
    picture = np.kron(rgb, np.ones((cell, cell, 1), dtype=np.float32))
    frame = np.full((HEIGHT, WIDTH, 3), 255, dtype=np.uint8)
    frame[:picture.shape[0], :picture.shape[1]] = (255 * (1.0 - picture.clip(0.0, 1.0))).astype(np.uint8)
    return frame


RENDERERS: dict[type, Renderer] = {Cartpole: cartpole, CartpoleIsaac: cartpole_isaac, Pendulum: pendulum,
                                   PointMassNav: point_mass, CartpoleNoVel: cartpole_no_vel,
                                   PendulumNoVel: pendulum, PointMassMaze: point_maze, GridReach: grid_reach}


def renderer_for(env: BatchedEnv) -> Renderer | None:
    """The renderer of a built-in task (None for other envs)."""
    return RENDERERS.get(type(env))


class RecordingEnv:
    """A batched env whose env 0 is filmed: one frame per step from its observation (the final observation at an
    episode's end), written by an ``EpisodeRecorder`` per episode; ``close()`` writes a partial episode. Only env 0
    is drawn. Everything else is the wrapped env's.

    Args:
        env: the env to film.
        recorder: where the frames go.
        renderer: draws one observation of ``env``.
    """

    def __init__(self, env: BatchedEnv, recorder: EpisodeRecorder, renderer: Renderer) -> None:
        self.env = env
        self.recorder = recorder
        self.renderer = renderer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def _frame(self, observations: Tensor) -> np.ndarray:
        return self.renderer(self.env, observations[0].detach().cpu().numpy())

    def reset(self, seed: int | None = None) -> Tensor:
        """Reset and film the first frame."""
        observations = self.env.reset(seed=seed)
        self.recorder.add(self._frame(observations))
        return observations

    def step(self, actions: Tensor) -> StepResult:
        """Step and film env 0; its episode's video is written when it ends."""
        result = self.env.step(actions)
        if bool(result.terminated[0] | result.truncated[0]):
            self.recorder.add(self._frame(result.final_observations))
            self.recorder.episode_ended()
        self.recorder.add(self._frame(result.observations))
        return result

    def close(self) -> None:
        """Write a partial episode, then close the env."""
        self.recorder.close()
        self.env.close()
