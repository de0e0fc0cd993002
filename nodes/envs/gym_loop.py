"""``GymEnvLoop``: Gymnasium envs stepped one after the other in this process, with same-step autoreset.

It returns what ``gymnasium.vector.SyncVectorEnv`` in ``AutoresetMode.SAME_STEP`` returns (the same observations,
rewards and flags from the same seeds, final observations in ``infos["final_obs"]`` under the ``"_final_obs"``
mask) and nothing else: the envs' own info dicts, which the vector env merges key by key for every env on every
step, are dropped, and the wrappers ``gymnasium.make`` adds that change no value (``PassiveEnvChecker``,
``OrderEnforcing``) are stepped around, with ``TimeLimit``'s count kept here. Gymnasium's HalfCheetah, Hopper and
Walker2d (``-v5``) are stepped as one batch (``LocomotionBatch``: the same numbers). ``benchmarks/hot_paths.py``
has what an env step costs here against the vector env.
"""
from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium.vector.utils import concatenate, create_empty_array
from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker, TimeLimit

from .locomotion_batch import LocomotionBatch

# wrappers whose step and reset return their env's values unchanged
_TRANSPARENT = (OrderEnforcing, PassiveEnvChecker)


def _core(env: gymnasium.Env) -> tuple[gymnasium.Env, int | None]:
    """The env under ``gymnasium.make``'s outer ``TimeLimit``, ``OrderEnforcing`` and ``PassiveEnvChecker``
    (exactly those classes, from the outside in, each at most once), and the time limit taken off (``None``: none)."""
    limit = None
    if type(env) is TimeLimit and isinstance(getattr(env, "_max_episode_steps", None), int):
        limit, env = env._max_episode_steps, env.env
    for wrapper in _TRANSPARENT:
        if type(env) is wrapper:
            env = env.env
    return env, limit


class GymEnvLoop:
    """``num_envs`` envs of one Gymnasium id, stepped in a loop; the part of the vector env API ``GymnasiumEnv``
    uses (``reset``, ``step``, ``close``, ``envs``, ``spec``, the single spaces).

    Args:
        task: a registered env id.
        num_envs: number of envs.
        env_kwargs: keyword arguments for ``gymnasium.make``.
    """

    def __init__(self, task: str, num_envs: int, env_kwargs: dict[str, Any]) -> None:
        self.envs = [gymnasium.make(task, **env_kwargs) for _ in range(num_envs)]
        self.spec = self.envs[0].spec
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space
        cores = [_core(env) for env in self.envs]
        self._cores = [core for core, _ in cores]
        self._limits = [limit for _, limit in cores]
        self._elapsed = [0] * num_envs
        self._observations = create_empty_array(self.single_observation_space, num_envs)
        self._batch = LocomotionBatch.build([core.unwrapped for core in self._cores]) if all(
            core is core.unwrapped for core in self._cores) else None

    def reset(self, seed: int | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset every env, env ``i`` with ``seed + i`` (all unseeded when ``seed`` is ``None``)."""
        observations = [core.reset(seed=None if seed is None else seed + i)[0] for i, core in enumerate(self._cores)]
        self._elapsed = [0] * len(self._cores)
        return concatenate(self.single_observation_space, observations, self._observations), {}

    def step(self, actions: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step env ``i`` with ``actions[i]``; an env whose episode ended is reset at once (its last observation in
        ``infos["final_obs"]``, flagged in ``infos["_final_obs"]``).

        Returns:
            ``(observations, rewards, terminated, truncated, infos)`` as ``SyncVectorEnv`` batches them.
        """
        if self._batch is not None:
            return self._batch_step(actions)
        count = len(self._cores)
        observations = []
        rewards = np.zeros(count, dtype=np.float64)
        terminated = np.zeros(count, dtype=np.bool_)
        truncated = np.zeros(count, dtype=np.bool_)
        finals: dict[int, Any] = {}
        for i, (core, action) in enumerate(zip(self._cores, actions, strict=True)):
            observation, rewards[i], terminated[i], truncated[i], _ = core.step(action)
            if self._episode_ended(i, terminated, truncated):
                finals[i] = observation
                observation = core.reset()[0]
            observations.append(observation)
        batch = concatenate(self.single_observation_space, observations, self._observations)
        return batch, rewards, terminated, truncated, _final_infos(finals, count)

    def _batch_step(self, actions: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """``step`` through ``LocomotionBatch``, then the time limits and resets env by env."""
        assert self._batch is not None
        observations, rewards, terminated = self._batch.step(np.asarray(actions), self._observations)
        count = len(self._cores)
        truncated = np.zeros(count, dtype=np.bool_)
        finals: dict[int, Any] = {}
        for i in range(count):
            if self._episode_ended(i, terminated, truncated):
                finals[i] = observations[i].copy()
                observations[i] = self._cores[i].reset()[0]
        return observations, rewards, terminated, truncated, _final_infos(finals, count)

    def _episode_ended(self, i: int, terminated: np.ndarray, truncated: np.ndarray) -> bool:
        """Count env ``i``'s step against its time limit (``truncated[i]`` set when it is reached); whether its
        episode ended, its count then starting again."""
        limit = self._limits[i]
        if limit is not None:
            self._elapsed[i] += 1
            if self._elapsed[i] >= limit:
                truncated[i] = True
        if terminated[i] or truncated[i]:
            self._elapsed[i] = 0
            return True
        return False

    def close(self) -> None:
        """Close every env."""
        for env in self.envs:
            env.close()


def _final_infos(finals: dict[int, Any], count: int) -> dict[str, Any]:
    """The vector env's ``infos`` for a step: the last observations of the episodes that ended, flagged."""
    infos: dict[str, Any] = {}
    if finals:
        infos["_final_obs"] = np.zeros(count, dtype=np.bool_)
        infos["final_obs"] = np.full(count, None, dtype=object)
        for i, observation in finals.items():
            infos["_final_obs"][i], infos["final_obs"][i] = True, observation
    return infos
