"""``LocomotionBatch``: Gymnasium's HalfCheetah, Hopper and Walker2d (``-v5``) stepped as one batch.

A step of these envs is MuJoCo's simulation and then a few dozen numpy calls on arrays of a dozen numbers (the
observation, the health check, the reward), each costing more in Python than in arithmetic: 9-32 us of a 40-120 us
env step on this project's 2-core machine. ``LocomotionBatch`` steps each env's MuJoCo data with the simulation
step of the env's own ``do_simulation``, then computes every env's observation, reward and termination at once
over the batch, with the same operations on the same values, so the same numbers (``tests/nodes/envs/test_locomotion_batch.py`` compares
them with the envs' own ``step``, bit for bit, across episode ends).

It steps only the exact classes of Gymnasium's ``HalfCheetah-v5``, ``Hopper-v5`` and ``Walker2d-v5`` (any of their
constructor arguments, read from the envs once, when the batch is built: settings changed on an env afterwards are
not seen), without rendering; every other env (a subclass, another version, another task) keeps its own ``step``.

MuJoCo 3.3.6 made constraint-island discovery the default. Each of these models is one kinematic tree, so its
constraints form at most one island and the solver computes the same numbers without the discovery, which cost
7-9 % of a Walker2d or Hopper step here; the batch turns it off on its envs' models when they are one tree (the tests
compare against envs that keep it on).

The envs' ``do_simulation`` also calls ``mj_rnePostConstraint`` after the step: it fills the bodies' accelerations and
their constraint and contact forces (``cacc``, ``cfrc_int``, ``cfrc_ext``), which ``mj_step`` neither reads nor fills
for these models (they have no sensors) and none of these three tasks reads (Ant's observation does; Ant is not
batched here). The batch skips it, 1-2 % of a Walker2d step, and leaves those fields as they were; every number the
envs return is the same.
"""
from __future__ import annotations

from typing import Any

import gymnasium
import mujoco
import numpy as np
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.envs.mujoco.hopper_v5 import HopperEnv
from gymnasium.envs.mujoco.walker2d_v5 import Walker2dEnv

_TASKS = (HalfCheetahEnv, HopperEnv, Walker2dEnv)


class LocomotionBatch:
    """Steps ``envs`` (all of one of the classes above, built alike) together; build with ``build``.

    Args:
        envs: the unwrapped envs.
    """

    def __init__(self, envs: list[Any]) -> None:
        first = envs[0]
        self.kind = type(first)
        self._pairs = [(env.model, env.data) for env in envs]
        # each MjData's arrays, taken once: they live as long as the data, and a view costs more than its copy
        self._envs = [(model, data, data.qpos, data.qvel, data.ctrl) for model, data in self._pairs]
        self._frame_skip = first.frame_skip
        self._forward_weight = first._forward_reward_weight
        self._ctrl_weight = first._ctrl_cost_weight
        self._exclude_x = first._exclude_current_positions_from_observation
        nq, nv = first.model.nq, first.model.nv
        self._qpos = np.empty((len(envs), nq))
        self._qvel = np.empty((len(envs), nv))
        self._x_before = np.empty(len(envs))
        self._nu = first.model.nu
        island = getattr(mujoco.mjtDisableBit, "mjDSBL_ISLAND", None)
        if island is not None:
            for model, _ in self._pairs:
                if model.ntree <= 1:  # a model of its own (xml_file) may hold more trees, and so more islands
                    model.opt.disableflags |= int(island)
        if self.kind is not HalfCheetahEnv:
            self._healthy_reward = first._healthy_reward
            self._terminate_when_unhealthy = first._terminate_when_unhealthy
            self._z_range = first._healthy_z_range
            self._angle_range = first._healthy_angle_range
            self._state_range = first._healthy_state_range if self.kind is HopperEnv else None

    @classmethod
    def build(cls, envs: list[gymnasium.Env]) -> LocomotionBatch | None:
        """A batch of ``envs`` (unwrapped), or ``None`` unless they are all of one of the three classes (exactly),
        built with the same arguments, and none renders."""
        if not envs or type(envs[0]) not in _TASKS:
            return None
        first = envs[0]
        kind = type(first)
        if any(type(env) is not kind or env.render_mode is not None
               or getattr(env, "_ezpickle_kwargs", None) != first._ezpickle_kwargs
               or getattr(env, "_ezpickle_args", None) != first._ezpickle_args for env in envs):
            return None
        return cls(list(envs))

    def step(self, actions: np.ndarray, observations: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Step env ``i`` with ``actions[i]``; its observation goes into ``observations[i]``.

        Returns:
            ``(observations, rewards, terminated)``: what each env's ``step`` returns, batched.
        """
        if actions.shape != (len(self._pairs), self._nu):
            raise ValueError(f"Action dimension mismatch. Expected {(len(self._pairs), self._nu)}, found "
                             f"{actions.shape}")
        qpos, qvel, before, frame_skip = self._qpos, self._qvel, self._x_before, self._frame_skip
        step = mujoco.mj_step
        for i, (model, data, data_qpos, data_qvel, ctrl) in enumerate(self._envs):
            before[i] = data_qpos[0]
            ctrl[:] = actions[i]
            step(model, data, nstep=frame_skip)
            qpos[i] = data_qpos
            qvel[i] = data_qvel
        model = self._pairs[0][0]
        x_velocity = (qpos[:, 0] - before) / (model.opt.timestep * frame_skip)
        position = qpos[:, 1:] if self._exclude_x else qpos
        velocity = qvel if self.kind is HalfCheetahEnv else np.clip(qvel, -10, 10)
        np.concatenate((position, velocity), axis=1, out=observations)
        forward_reward = self._forward_weight * x_velocity
        ctrl_cost = (self._ctrl_weight * np.sum(np.square(actions), axis=1)).astype(np.float64)
        if self.kind is HalfCheetahEnv:
            return observations, forward_reward - ctrl_cost, np.zeros(len(self._pairs), dtype=np.bool_)
        healthy = self._healthy(qpos, qvel)
        rewards = (forward_reward + healthy * self._healthy_reward) - ctrl_cost
        terminated = ~healthy if self._terminate_when_unhealthy else np.zeros(len(self._pairs), dtype=np.bool_)
        return observations, rewards, terminated

    def _healthy(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        """Each env's ``is_healthy``: height and angle in range (Hopper: every other state entry too)."""
        (min_z, max_z), (min_angle, max_angle) = self._z_range, self._angle_range
        z, angle = qpos[:, 1], qpos[:, 2]
        healthy = (min_z < z) & (z < max_z) & (min_angle < angle) & (angle < max_angle)
        if self._state_range is not None:
            min_state, max_state = self._state_range
            state = np.concatenate((qpos[:, 2:], qvel), axis=1)
            healthy &= np.all((min_state < state) & (state < max_state), axis=1)
        return healthy
