"""IsaacGymEnvs tasks behind the batched contract, through their ``VecTask`` API."""
from __future__ import annotations

import math
import os
from typing import Any

import torch
from torch import Tensor

from .base import BatchedEnv, RunningEpisodes, StepResult
from .spaces import Box

ISAAC_GYM_MISSING = (
    "Isaac Gym could not be imported. It is GPU-only and not on PyPI, and its last release (Preview 4) supports "
    "Python up to 3.8. Either install Isaac Gym and IsaacGymEnvs from NVIDIA's site into a Python 3.8 environment and "
    "run this env group in a worker process under that interpreter (the graph's `placement` section), or use the "
    "built-in torch task `CartpoleIsaac` (backend 'torch') instead of Isaac Gym's Cartpole."
)


def create_vec_task(task: str, num_envs: int, device: str, headless: bool, physics_engine: str) -> Any:
    """Build an IsaacGymEnvs task from its Hydra config.

    ``isaacgym`` must be imported before torch initializes CUDA, so call this before any CUDA tensor exists.

    Args:
        task: IsaacGymEnvs task name, e.g. ``"Cartpole"``.
        num_envs: number of environments.
        device: simulation and RL device, e.g. ``"cuda:0"``.
        headless: run without a viewer.
        physics_engine: ``"physx"`` or ``"flex"``.

    Returns:
        The ``VecTask``.

    Raises:
        ImportError: Isaac Gym or IsaacGymEnvs is not importable, with what to do instead.
    """
    try:
        import isaacgym  # noqa: F401  # must precede isaacgymenvs, which imports torch's CUDA side
        import isaacgymenvs
        from hydra import compose, initialize_config_dir
    except ImportError as exc:
        raise ImportError(ISAAC_GYM_MISSING) from exc
    config_dir = os.path.join(os.path.dirname(isaacgymenvs.__file__), "cfg")
    overrides = [
        f"task={task}",
        f"num_envs={num_envs}",
        f"sim_device={device}",
        f"rl_device={device}",
        f"headless={headless}",
        f"physics_engine={physics_engine}",
    ]
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        cfg = compose(config_name="config", overrides=overrides)
    return isaacgymenvs.make(
        seed=cfg.seed,
        task=task,
        num_envs=num_envs,
        sim_device=device,
        rl_device=device,
        graphics_device_id=-1 if headless else 0,
        headless=headless,
        cfg=cfg,
    )


class IsaacGymEnv(BatchedEnv):
    """An IsaacGymEnvs ``VecTask`` with automatic reset in the same step and the final observation kept.

    ``VecTask.step`` returns ``(obs_dict, rew_buf, reset_buf, extras)`` where an env flagged in ``reset_buf`` still
    shows its pre-reset observation; IsaacGymEnvs would reset it only in the next step's ``post_physics_step``, after
    applying (and wasting) that step's action to the ended episode. This adapter instead resets flagged envs at once:
    the returned observation becomes ``final_observations``, then ``task.reset_idx(ids)`` and
    ``task.compute_observations()`` give the new episodes' first observations, clipped as ``VecTask`` clips them.
    ``reset_idx`` clears ``reset_buf``, so the task does not reset those envs again. This relies on
    ``compute_observations`` reading the state ``reset_idx`` wrote, as the IsaacGymEnvs tasks' tensor-API resets do.

    ``extras["time_outs"]`` marks truncations; a failure on the last step of an episode is reported as truncated,
    since ``VecTask`` does not tell the two apart. Rewards are ``rew_buf`` as the task computed them.

    Args:
        task: IsaacGymEnvs task name, e.g. ``"Cartpole"``.
        num_envs: number of environments.
        device: device of every returned tensor (and the simulation device when creating the task).
        headless: run without a viewer (only when creating the task).
        physics_engine: ``"physx"`` or ``"flex"`` (only when creating the task).
        vec_task: an existing ``VecTask`` to wrap instead of creating one.
    """

    def __init__(
        self,
        task: str,
        num_envs: int,
        device: str | torch.device = "cuda:0",
        headless: bool = True,
        physics_engine: str = "physx",
        vec_task: Any = None,
    ) -> None:
        if vec_task is None:
            vec_task = create_vec_task(task, num_envs, str(device), headless, physics_engine)
        if vec_task.num_envs != num_envs:
            raise ValueError(f"Isaac Gym task {task!r} has {vec_task.num_envs} envs, but {num_envs} were asked for")
        self._task = vec_task
        self.task = task
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.observation_space = _box(vec_task.observation_space)
        self.action_space = _box(vec_task.action_space)
        self.dt = float(getattr(vec_task, "dt", 0.0)) * int(getattr(vec_task, "control_freq_inv", 1))
        self._clip_obs = float(getattr(vec_task, "clip_obs", math.inf))
        self._episodes = RunningEpisodes(num_envs, self.device, torch.float32)

    def reset(self, seed: int | None = None) -> Tensor:
        """Reset every environment and compute its first observations.

        Args:
            seed: seeds torch's global generator, from which IsaacGymEnvs tasks draw their resets.
        """
        if seed is not None:
            torch.manual_seed(seed)
        self._task.reset_idx(torch.arange(self.num_envs, device=self._task.device))
        self._task.compute_observations()
        self._episodes.reset()
        return self._observations(self._task.obs_buf)

    def step(self, actions: Tensor) -> StepResult:
        """Step the task and reset ended envs in the same step; see ``BatchedEnv.step``."""
        actions = self.check_actions(actions)
        obs_dict, rew_buf, reset_buf, extras = self._task.step(actions)
        final_observations = self._observations(obs_dict["obs"])
        rewards = rew_buf.to(self.device, torch.float32).clone()
        done = reset_buf.to(self.device) != 0
        time_outs = extras.get("time_outs")
        truncated = done & (time_outs.to(self.device) != 0) if time_outs is not None else torch.zeros_like(done)
        terminated = done & ~truncated
        ended = done.nonzero().flatten()
        if ended.numel() > 0:
            self._task.reset_idx(ended.to(self._task.device))
            self._task.compute_observations()
            observations = self._observations(self._task.obs_buf)
        else:
            observations = final_observations.clone()
        episode_returns, episode_lengths = self._episodes.update(rewards, done)
        return StepResult(
            observations=observations,
            rewards=rewards,
            terminated=terminated,
            truncated=truncated,
            final_observations=final_observations,
            episode_returns=episode_returns,
            episode_lengths=episode_lengths,
        )

    def _observations(self, obs: Tensor) -> Tensor:
        """A new clipped float32 copy of a task observation buffer on the env device."""
        return obs.clamp(-self._clip_obs, self._clip_obs).to(self.device, torch.float32)


def _box(space: Any) -> Box:
    """Our ``Box`` from a gym-style Box (``low`` and ``high`` arrays) that ``VecTask`` exposes."""
    low = torch.as_tensor(space.low, dtype=torch.float64).flatten()
    high = torch.as_tensor(space.high, dtype=torch.float64).flatten()
    return Box(low, high)
