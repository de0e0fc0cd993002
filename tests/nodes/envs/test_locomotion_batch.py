"""``LocomotionBatch``: HalfCheetah, Hopper and Walker2d stepped as one batch give what the envs' own steps give."""
from __future__ import annotations

from typing import Any

import gymnasium
import mujoco
import numpy as np
import pytest
from gymnasium.envs.mujoco.hopper_v5 import HopperEnv

from dnne.nodes.envs.gym_backend import same_step_vector_env
from dnne.nodes.envs.gym_loop import GymEnvLoop
from dnne.nodes.envs.locomotion_batch import LocomotionBatch
from same_steps import assert_same_step


@pytest.mark.parametrize(("task", "env_kwargs"), [
    ("HalfCheetah-v5", {"max_episode_steps": 40}),
    ("Hopper-v5", {}),  # falls: terminations
    ("Walker2d-v5", {"max_episode_steps": 60}),
    ("Hopper-v5", {"terminate_when_unhealthy": False, "ctrl_cost_weight": 0.01, "max_episode_steps": 30,
                   "exclude_current_positions_from_observation": False, "healthy_angle_range": (-0.5, 0.5)}),
    ("Walker2d-v5", {"forward_reward_weight": 2.0, "healthy_reward": 0.5, "healthy_z_range": (0.9, 1.8)}),
    ("HalfCheetah-v5", {"frame_skip": 3, "reset_noise_scale": 0.5, "max_episode_steps": 30}),
], ids=["halfcheetah", "hopper", "walker2d", "hopper-kwargs", "walker2d-kwargs", "halfcheetah-kwargs"])
def test_bit_for_bit_the_vector_env_s_steps(task: str, env_kwargs: dict[str, Any]) -> None:
    """Observations, rewards, termination and truncation flags and final observations equal those of Gymnasium's
    same-step ``SyncVectorEnv`` (each env's own ``step``) exactly, over many episode ends."""
    ours, theirs = GymEnvLoop(task, 5, env_kwargs), same_step_vector_env(task, 5, "sync", env_kwargs)
    assert ours._batch is not None
    island = getattr(mujoco.mjtDisableBit, "mjDSBL_ISLAND", None)
    if island is not None:  # ours step without island discovery, Gymnasium's envs with it
        assert all(model.opt.disableflags & int(island) for model, _ in ours._batch._pairs)
        assert not theirs.envs[0].unwrapped.model.opt.disableflags & int(island)
    np.testing.assert_array_equal(ours.reset(seed=11)[0], theirs.reset(seed=11)[0])
    generator = np.random.default_rng(4)
    ends = terminations = 0
    for _ in range(300):
        actions = generator.uniform(-1.0, 1.0, (5, *theirs.single_action_space.shape)).astype(np.float32)
        mine, reference = ours.step(actions), theirs.step(actions)
        ends += assert_same_step(mine, reference, 5)
        terminations += int(reference[2].sum())
    assert ends >= 10
    if task == "Hopper-v5" and env_kwargs.get("terminate_when_unhealthy", True):
        assert terminations >= 10
    ours.close()
    theirs.close()


def test_only_the_three_classes_built_alike_without_rendering() -> None:
    """Another task, a subclass, envs built with different arguments or a rendering env keep their own steps."""
    def hoppers(**kwargs: Any) -> list[gymnasium.Env]:
        return [gymnasium.make("Hopper-v5", **kwargs).unwrapped for _ in range(2)]

    assert LocomotionBatch.build(hoppers()) is not None
    assert LocomotionBatch.build([gymnasium.make("Ant-v5").unwrapped]) is None
    assert LocomotionBatch.build([gymnasium.make("Hopper-v5").unwrapped,
                                  gymnasium.make("Hopper-v5", ctrl_cost_weight=0.1).unwrapped]) is None
    assert LocomotionBatch.build(hoppers(render_mode="rgb_array")) is None

    class Hopper(HopperEnv):
        """A user's variant: its own step may differ."""

    assert LocomotionBatch.build([Hopper()]) is None
    assert GymEnvLoop("CartPole-v1", 2, {})._batch is None


def test_a_wrong_action_shape_is_refused_before_any_env_steps() -> None:
    """Actions of the wrong width or for another number of envs are refused, as the envs' own steps refuse them."""
    loop = GymEnvLoop("Walker2d-v5", 2, {})
    loop.reset(seed=0)
    for shape in ((2, 5), (3, 6), (1, 6)):
        with pytest.raises(ValueError, match="Action dimension mismatch"):
            loop.step(np.zeros(shape, dtype=np.float32))
