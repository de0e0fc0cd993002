"""Observations a policy can read: Gymnasium spaces that are not a flat box become one (as SB3 does)."""
from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium.spaces.utils import flatten, flatten_space

from .spaces import Box

FLAT_LEAVES = (gymnasium.spaces.Box, gymnasium.spaces.Discrete, gymnasium.spaces.MultiDiscrete,
               gymnasium.spaces.MultiBinary)


class ObservationFlattener:
    """A flat ``Box`` view of one env's observation space, and the conversion of observations to it.

    A 1-d Box passes through untouched. A Discrete observation becomes a one-hot vector; a Dict (or Tuple) is
    flattened key by key in Gymnasium's order (sorted keys), each part flattened the same way; a multi-dimensional
    Box is flattened row-major. A part that has no vector form (text, graphs, sequences) is an error naming its key.

    Args:
        space: one env's observation space (``single_observation_space``).
        task: the env id, for messages.
    """

    def __init__(self, space: gymnasium.Space, task: str) -> None:
        self.source = space
        self.passthrough = isinstance(space, gymnasium.spaces.Box) and len(space.shape) == 1
        self.box = isinstance(space, gymnasium.spaces.Box)
        if not self.passthrough:
            _check_flattenable(space, task, "observation")
        flat = space if self.passthrough else flatten_space(space)
        self.space = Box(_bound(flat.low), _bound(flat.high))

    def batch(self, observations: Any) -> np.ndarray:
        """Flat observations ``[N, dim]`` from a vector env's batched observations."""
        if self.passthrough:
            return observations
        if self.box:  # one reshape of the whole batch, what flattening each row would give
            return np.asarray(observations, dtype=self.source.dtype).reshape(len(observations), -1)
        count = len(observations) if not isinstance(observations, dict) else len(next(iter(_leaves(observations))))
        return np.stack([self.one(_item(observations, i)) for i in range(count)])

    def one(self, observation: Any) -> np.ndarray:
        """The flat form of one env's observation."""
        if self.passthrough:
            return observation
        return flatten(self.source, observation)


def _check_flattenable(space: gymnasium.Space, task: str, where: str) -> None:
    if isinstance(space, FLAT_LEAVES):
        return
    if isinstance(space, gymnasium.spaces.Dict):
        for key, sub in space.spaces.items():
            _check_flattenable(sub, task, f"{where} key {key!r}")
        return
    if isinstance(space, gymnasium.spaces.Tuple):
        for index, sub in enumerate(space.spaces):
            _check_flattenable(sub, task, f"{where} item {index}")
        return
    raise ValueError(f"Gymnasium env {task!r}: {where} has space {space}, which has no vector form; drop or encode "
                     "it with a Gymnasium observation wrapper in a registered env")


def _bound(values: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.float64).reshape(-1))


def _leaves(observations: Any) -> Any:
    if isinstance(observations, dict):
        for value in observations.values():
            yield from _leaves(value)
    elif isinstance(observations, tuple):
        for value in observations:
            yield from _leaves(value)
    else:
        yield observations


def _item(observations: Any, index: int) -> Any:
    """Env ``index``'s observation out of a batched (vector env) observation."""
    if isinstance(observations, dict):
        return {key: _item(value, index) for key, value in observations.items()}
    if isinstance(observations, tuple):
        return tuple(_item(value, index) for value in observations)
    return observations[index]

