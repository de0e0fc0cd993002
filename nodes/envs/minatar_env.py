"""MinAtar's games (the ``minatar`` package, an optional extra) as Gymnasium 1.x envs under ids of our own.

``MinAtar/Breakout-v1`` and its siblings are registered with Gymnasium by ``register_minatar_envs`` (the Gymnasium
backend calls it) when ``minatar`` is importable, so a graph names them like any registered id, with no ``module:``
prefix. ``minatar`` itself is imported only when an env is built. The ids follow MinAtar's own: ``-v1`` acts with the
game's minimal action set (what Gymnax, and so PureJaxRL's MinAtar PPO, uses), ``-v0`` with all six actions (MinAtar's
gym wrapper's default). Sticky actions with probability 0.1 (MinAtar's default) and no step limit (MinAtar's gym
wrapper has none; ``env_kwargs={"max_episode_steps": N}`` adds one).
"""
from __future__ import annotations

import importlib.util
from typing import Any, ClassVar

import gymnasium
import numpy as np

GAMES = {"Asterix": "asterix", "Breakout": "breakout", "Freeway": "freeway", "Seaquest": "seaquest",
         "SpaceInvaders": "space_invaders"}
NAMESPACE = "MinAtar/"
INSTALL_HINT = 'pip install "dnne-runtime[minatar]"'
CELL_PIXELS = 16


def minatar_available() -> bool:
    """Whether the ``minatar`` package can be imported (found without importing it)."""
    try:
        return importlib.util.find_spec("minatar") is not None
    except (ImportError, ValueError):
        return False


def missing_minatar(task: str) -> str | None:
    """Why ``task`` cannot be made: it is a ``MinAtar/`` id and ``minatar`` is not installed; else ``None``."""
    if not task.startswith(NAMESPACE) or minatar_available():
        return None
    return (f"env id {task!r} needs the optional package 'minatar', which is not installed: {INSTALL_HINT} "
            f"(or pip install minatar)")


def register_minatar_envs() -> None:
    """Register ``MinAtar/<Game>-v0`` (all six actions) and ``-v1`` (the minimal action set) for every game, when
    ``minatar`` is importable; ids already registered are left as they are."""
    if not minatar_available():
        return
    for name, game in GAMES.items():
        for version, minimal in (("v0", False), ("v1", True)):
            env_id = f"{NAMESPACE}{name}-{version}"
            if env_id not in gymnasium.registry:
                gymnasium.register(env_id, entry_point=f"{__name__}:MinAtarEnv",
                                   kwargs={"game": game, "use_minimal_action_set": minimal})


class MinAtarEnv(gymnasium.Env):
    """One MinAtar game as a Gymnasium env: observations ``[C, 10, 10]`` float32 in {0, 1} (MinAtar's boolean
    ``[10, 10, C]`` frame, channels first), ``Discrete`` actions, the game's reward, ``terminated`` when the game
    ends (never truncated by itself).

    Args:
        game: MinAtar's game name: asterix, breakout, freeway, seaquest or space_invaders.
        use_minimal_action_set: act with the game's minimal action set (else all six MinAtar actions).
        sticky_action_prob: probability that the previous action is repeated instead of the chosen one.
        difficulty_ramping: let the game speed up over an episode (MinAtar's default).
        render_mode: ``None`` or ``"rgb_array"`` (one colour per channel, ``CELL_PIXELS`` pixels a cell).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, game: str, use_minimal_action_set: bool = True, sticky_action_prob: float = 0.1,
                 difficulty_ramping: bool = True, render_mode: str | None = None) -> None:
        if game not in GAMES.values():
            raise ValueError(f"unknown MinAtar game {game!r}; games are: {', '.join(GAMES.values())}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"MinAtar env: render_mode must be None or 'rgb_array', got {render_mode!r}")
        if not 0.0 <= sticky_action_prob <= 1.0:
            raise ValueError(f"MinAtar env: sticky_action_prob must be in [0, 1], got {sticky_action_prob}")
        from minatar import Environment

        self.game = Environment(game, sticky_action_prob=sticky_action_prob, difficulty_ramping=difficulty_ramping)
        self.action_set = list(self.game.minimal_action_set() if use_minimal_action_set
                               else range(self.game.num_actions()))
        height, width, channels = self.game.state_shape()
        self.observation_space = gymnasium.spaces.Box(0.0, 1.0, shape=(channels, height, width), dtype=np.float32)
        self.action_space = gymnasium.spaces.Discrete(len(self.action_set))
        self.render_mode = render_mode

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Start a new game; a seed reseeds MinAtar's generator and forgets the last (sticky) action, so a seeded
        reset plays as a fresh env built and reset with that seed."""
        super().reset(seed=seed)
        if seed is not None:
            self.game.seed(seed)
            self.game.last_action = 0
        self.game.reset()
        return self._observation(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Play one frame with ``action`` (an index into the action set)."""
        reward, terminal = self.game.act(self.action_set[int(action)])
        return self._observation(), float(reward), bool(terminal), False, {}

    def render(self) -> np.ndarray | None:
        """An RGB frame ``[10 * CELL_PIXELS, 10 * CELL_PIXELS, 3]`` uint8: black where no channel is set, else the
        colour of the highest set channel; ``None`` without ``render_mode="rgb_array"``."""
        if self.render_mode != "rgb_array":
            return None
        state = self.game.state()
        channels = state.shape[-1]
        palette = np.zeros((channels + 1, 3), dtype=np.uint8)
        hues = np.arange(channels) / channels
        palette[1:] = (255 * (0.5 + 0.5 * np.cos(2 * np.pi * (hues[:, None] + np.array([0.0, 1 / 3, 2 / 3]))))
                       ).astype(np.uint8)
        index = np.amax(state * np.arange(1, channels + 1), axis=2)
        return np.kron(palette[index], np.ones((CELL_PIXELS, CELL_PIXELS, 1), dtype=np.uint8))

    def _observation(self) -> np.ndarray:
        """MinAtar's ``[10, 10, C]`` boolean state as a new ``[C, 10, 10]`` float32 array."""
        return np.ascontiguousarray(self.game.state().transpose(2, 0, 1), dtype=np.float32)
