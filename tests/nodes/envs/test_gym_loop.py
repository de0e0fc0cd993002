"""``GymEnvLoop`` returns what Gymnasium's same-step ``SyncVectorEnv`` returns, step for step."""
from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import pytest

from dnne.nodes.envs.gym_backend import same_step_vector_env
from dnne.nodes.envs.gym_loop import GymEnvLoop, _core
from same_steps import assert_same_step


@pytest.mark.parametrize(("task", "env_kwargs"), [
    ("CartPole-v1", {}),  # terminations
    ("Pendulum-v1", {"max_episode_steps": 30}),  # time-limit truncations only
    ("HalfCheetah-v5", {"max_episode_steps": 25}),  # MuJoCo
])
def test_same_steps_as_sync_vector_env(task: str, env_kwargs: dict[str, Any]) -> None:
    """Observations, rewards, flags and final observations equal the vector env's over many episodes."""
    ours, theirs = GymEnvLoop(task, 4, env_kwargs), same_step_vector_env(task, 4, "sync", env_kwargs)
    np.testing.assert_array_equal(ours.reset(seed=7)[0], theirs.reset(seed=7)[0])
    theirs.action_space.seed(3)
    ends = 0
    for _ in range(200):
        actions = theirs.action_space.sample()
        ends += assert_same_step(ours.step(actions), theirs.step(actions), 4)
    assert ends >= 8
    ours.close()
    theirs.close()


def test_only_make_s_value_free_wrappers_are_stepped_around() -> None:
    """``TimeLimit`` (its limit kept), ``OrderEnforcing`` and ``PassiveEnvChecker`` come off; any other wrapper
    stays, and so does everything under it."""
    core, limit = _core(gymnasium.make("CartPole-v1", max_episode_steps=40))
    assert type(core).__name__ == "CartPoleEnv" and limit == 40
    clipped = gymnasium.wrappers.ClipReward(gymnasium.make("CartPole-v1"), 0.0, 0.5)
    core, limit = _core(clipped)
    assert core is clipped and limit is None
