"""The IsaacGymEnvs adapter, driven through a VecTask-style shim around the built-in CartpoleIsaac."""
from __future__ import annotations

import math

import gymnasium
import pytest
import torch

from dnne.nodes.envs.base import StepResult
from dnne.nodes.envs.cartpole_isaac import CartpoleIsaac
from dnne.nodes.envs.isaacgym_backend import IsaacGymEnv


class CartpoleVecTask:
    """CartpoleIsaac exposed through IsaacGymEnvs' VecTask API, with VecTask's buffers and deferred resets.

    Like IsaacGymEnvs, buffers are written in place, an env flagged in ``reset_buf`` is only reset in the next step's
    ``post_physics_step`` (after the physics applied that step's action), resets draw from torch's global generator
    and ``time_outs`` is ``progress_buf >= max_episode_length - 1`` where ``reset_buf`` is set.

    Args:
        num_envs: number of environments.
        episode_steps: steps until truncation (VecTask's ``max_episode_length`` is one more, for its ``- 1``).
    """

    def __init__(self, num_envs: int, episode_steps: int) -> None:
        self.physics = CartpoleIsaac(num_envs)
        self.num_envs = num_envs
        self.device = torch.device("cpu")
        self.max_episode_length = episode_steps + 1
        self.dt = 1 / 60
        self.control_freq_inv = 1
        self.clip_obs = 5.0
        self.clip_actions = 400.0
        self.observation_space = gymnasium.spaces.Box(-math.inf, math.inf, (4,))
        self.action_space = gymnasium.spaces.Box(-400.0, 400.0, (1,))
        self.state = torch.zeros(num_envs, 4)
        self.obs_buf = torch.zeros(num_envs, 4)
        self.rew_buf = torch.zeros(num_envs)
        self.reset_buf = torch.ones(num_envs, dtype=torch.long)
        self.progress_buf = torch.zeros(num_envs, dtype=torch.long)
        self.timeout_buf = torch.zeros(num_envs, dtype=torch.long)
        self.extras: dict[str, torch.Tensor] = {}
        self.obs_dict: dict[str, torch.Tensor] = {}

    def reset_idx(self, env_ids: torch.Tensor) -> None:
        """Draw new states for ``env_ids`` as CartpoleIsaac does, but from torch's global generator."""
        positions = -0.1 + 0.2 * torch.rand((len(env_ids), 2))
        velocities = -0.25 + 0.5 * torch.rand((len(env_ids), 2))
        self.state[env_ids] = torch.stack((positions[:, 0], velocities[:, 0], positions[:, 1], velocities[:, 1]), 1)
        self.reset_buf[env_ids] = 0
        self.progress_buf[env_ids] = 0

    def compute_observations(self) -> torch.Tensor:
        """Copy the state into ``obs_buf`` in place."""
        self.obs_buf[:] = self.state
        return self.obs_buf

    def step(self, actions: torch.Tensor) -> tuple[dict, torch.Tensor, torch.Tensor, dict]:
        """VecTask.step: clip, simulate, then post_physics_step with its deferred resets."""
        force = actions.clamp(-self.clip_actions, self.clip_actions)[:, 0]
        self.state = self.physics.dynamics(self.state, force)
        self.progress_buf += 1
        env_ids = self.reset_buf.nonzero().flatten()
        if len(env_ids) > 0:
            self.reset_idx(env_ids)
        self.compute_observations()
        reward, failed = self.physics.reward(self.obs_buf)
        self.rew_buf[:] = reward
        timed_out = self.progress_buf >= self.max_episode_length - 1
        self.reset_buf[:] = torch.where(failed | timed_out, torch.ones_like(self.reset_buf), self.reset_buf)
        self.timeout_buf = timed_out & (self.reset_buf != 0)
        self.extras["time_outs"] = self.timeout_buf
        self.obs_dict["obs"] = self.obs_buf.clamp(-self.clip_obs, self.clip_obs)
        return self.obs_dict, self.rew_buf, self.reset_buf, self.extras


def random_forces(n: int, generator: torch.Generator, scale: float) -> torch.Tensor:
    """``[n, 1]`` forces uniform in ``[-scale, scale]``."""
    return (torch.rand((n, 1), generator=generator) * 2 - 1) * scale


class TestShim:
    def test_shim_defers_resets_like_isaac_gym(self) -> None:
        """Stepped raw, the shim shows a failed env's pre-reset observation and resets it only on the next step."""
        task = CartpoleVecTask(2, episode_steps=500)
        task.reset_idx(torch.arange(2))
        task.state[0] = torch.tensor([2.99, 50.0, 0.0, 0.0])
        obs_dict, _, reset_buf, _ = task.step(torch.zeros(2, 1))
        assert reset_buf.tolist() == [1, 0] and obs_dict["obs"][0, 0].item() > 3.0
        obs_dict, _, reset_buf, _ = task.step(torch.zeros(2, 1))
        assert reset_buf.tolist() == [0, 0] and abs(obs_dict["obs"][0, 0].item()) < 0.2


class TestIsaacGymAdapter:
    @pytest.mark.parametrize(("scale", "episode_steps"), [(400.0, 500), (3.0, 60)])
    def test_matches_builtin_task_step_for_step(self, scale: float, episode_steps: int) -> None:
        """Through the adapter, the deferred-reset VecTask gives exactly the built-in task's results, step for step."""
        n = 32
        adapter = IsaacGymEnv("Cartpole", n, device="cpu", vec_task=CartpoleVecTask(n, episode_steps))
        builtin = CartpoleIsaac(n, max_episode_steps=episode_steps)
        assert torch.equal(adapter.reset(seed=9), builtin.reset(seed=9))
        generator = torch.Generator().manual_seed(9)
        counts = {"terminated": 0, "truncated": 0}
        for _ in range(200):
            actions = random_forces(n, generator, scale)
            ours, reference = adapter.step(actions), builtin.step(actions)
            for field in StepResult.__dataclass_fields__:
                assert torch.equal(getattr(ours, field), getattr(reference, field)), field
            counts["terminated"] += int(ours.terminated.sum())
            counts["truncated"] += int(ours.truncated.sum())
        assert counts["terminated"] > 0
        assert (counts["truncated"] > 0) == (episode_steps < 200)

    def test_returned_tensors_survive_in_place_buffers(self) -> None:
        """The task rewrites its buffers in place each step; tensors the adapter returned keep their values."""
        adapter = IsaacGymEnv("Cartpole", 8, device="cpu", vec_task=CartpoleVecTask(8, 10))
        adapter.reset(seed=0)
        generator = torch.Generator().manual_seed(0)
        result = adapter.step(random_forces(8, generator, 50.0))
        copy = {f: getattr(result, f).clone() for f in StepResult.__dataclass_fields__}
        for _ in range(15):
            adapter.step(random_forces(8, generator, 50.0))
        assert all(torch.equal(getattr(result, f), copy[f]) for f in copy)

    def test_spaces_dt_and_no_resume(self) -> None:
        """Spaces and dt come from the VecTask; exact resume is not supported and says so."""
        adapter = IsaacGymEnv("Cartpole", 4, device="cpu", vec_task=CartpoleVecTask(4, 10))
        assert adapter.action_space.high.tolist() == [400.0] and adapter.observation_space.dim == 4
        assert adapter.dt == pytest.approx(1 / 60)
        assert not adapter.supports_state
        with pytest.raises(NotImplementedError, match="IsaacGymEnv does not support exact resume"):
            adapter.state_dict()

    def test_bad_actions_and_num_envs(self) -> None:
        """NaN actions raise ValueError; a VecTask with another number of envs is refused."""
        adapter = IsaacGymEnv("Cartpole", 4, device="cpu", vec_task=CartpoleVecTask(4, 10))
        adapter.reset(seed=0)
        with pytest.raises(ValueError, match="NaN or infinity"):
            adapter.step(torch.full((4, 1), float("nan")))
        with pytest.raises(ValueError, match="has 4 envs, but 8 were asked for"):
            IsaacGymEnv("Cartpole", 8, device="cpu", vec_task=CartpoleVecTask(4, 10))
