"""The Gymnasium backend: vectorized numpy envs, already-batched torch envs, and dead async workers."""
from __future__ import annotations

import multiprocessing
import warnings
from typing import Any

import gymnasium
import numpy as np
import pytest
import torch

from dnne.nodes.envs.base import StepResult
from dnne.nodes.envs.gym_backend import GymnasiumEnv
from dnne.nodes.envs.spaces import Box, Discrete


def snapshot(result: StepResult) -> dict[str, torch.Tensor]:
    """Clones of every field of a step result."""
    return {f: getattr(result, f).clone() for f in StepResult.__dataclass_fields__}


class TestVectorizedCartPole:
    def test_spaces_dt_and_first_observations(self) -> None:
        """CartPole-v1 converts to Discrete(2) and a 4-d Box, dt 1/render_fps = 0.02, first obs [N, 4] float32."""
        env = GymnasiumEnv("CartPole-v1", 3)
        observations = env.reset(seed=0)
        assert env.action_space == Discrete(2)
        assert isinstance(env.observation_space, Box) and env.observation_space.dim == 4
        assert env.dt == pytest.approx(0.02)
        assert observations.shape == (3, 4) and observations.dtype == torch.float32
        assert not env.supports_state
        with pytest.raises(NotImplementedError, match="does not support exact resume"):
            env.state_dict()
        env.close()

    def test_autoreset_keeps_final_observations_and_episode_statistics(self) -> None:
        """Ended envs report a terminal final observation, restart in the reset range, and give return = length."""
        env = GymnasiumEnv("CartPole-v1", 3, dtype=torch.float64)
        env.reset(seed=0)
        lengths = torch.zeros(3, dtype=torch.long)
        reported = 0
        for _ in range(60):
            result = env.step(torch.ones(3, dtype=torch.long))
            lengths += 1
            done = result.terminated | result.truncated
            assert torch.equal(result.observations[~done], result.final_observations[~done])
            if bool(done.any()):
                final = result.final_observations[done]
                assert bool(((final[:, 0].abs() > 2.4) | (final[:, 2].abs() > 0.2094)).all())
                assert bool((result.observations[done].abs() <= 0.05).all())
                assert torch.equal(result.episode_lengths, lengths[done])
                assert torch.equal(result.episode_returns, lengths[done].double())
                reported += int(done.sum())
                lengths[done] = 0
        assert reported >= 3
        env.close()

    def test_truncation_from_env_kwargs(self) -> None:
        """A time limit passed through env_kwargs truncates (not terminates) every env at that step."""
        env = GymnasiumEnv("CartPole-v1", 2, env_kwargs={"max_episode_steps": 10})
        env.reset(seed=0)
        for step in range(10):
            result = env.step(torch.tensor([step % 2, (step + 1) % 2]))
        assert result.truncated.tolist() == [True, True] and result.terminated.tolist() == [False, False]
        assert result.episode_lengths.tolist() == [10, 10]
        env.close()

    def test_same_seed_same_run_and_fresh_tensors(self) -> None:
        """Equal seeds and actions give equal runs; tensors already returned are untouched by later steps."""
        runs = []
        for _ in range(2):
            env = GymnasiumEnv("CartPole-v1", 4)
            first = env.reset(seed=11)
            results = [env.step(torch.tensor([0, 1, 1, 0])) for _ in range(3)]
            copies = [snapshot(r) for r in results]
            first_copy = first.clone()
            later = [env.step(torch.tensor([1, 1, 0, 0])).observations for _ in range(20)]
            assert torch.equal(first, first_copy)
            assert all(torch.equal(getattr(r, f), c[f]) for r, c in zip(results, copies) for f in c)
            runs.append(torch.cat([first, *[r.observations for r in results], *later]))
            env.close()
        assert torch.equal(runs[0], runs[1])

    def test_bad_actions(self) -> None:
        """Float actions for a discrete Gymnasium env raise ValueError before reaching Gymnasium."""
        env = GymnasiumEnv("CartPole-v1", 2)
        env.reset(seed=0)
        with pytest.raises(ValueError, match="integer dtype"):
            env.step(torch.zeros(2))
        env.close()


class TestContinuousActions:
    @pytest.mark.parametrize(("actions", "message"), [
        (torch.tensor([[0.0], [float("nan")], [0.0]]), r"NaN or infinity in env\(s\) \[1\]"),
        (torch.tensor([[0.0], [0.0], [float("-inf")]], dtype=torch.float64), r"NaN or infinity in env\(s\) \[2\]"),
        (torch.zeros(3), r"expected continuous actions of shape \[3, 1\], got shape \[3\]"),
        (torch.zeros(3, 1, dtype=torch.long), "float dtype, got shape"),
    ])
    def test_rejections_name_the_problem(self, actions: torch.Tensor, message: str) -> None:
        """Bad Box actions of either float dtype (finiteness tested on numpy) or of the wrong shape or dtype raise
        errors that say what is wrong, naming the envs."""
        env = GymnasiumEnv("Pendulum-v1", 3)
        env.reset(seed=0)
        with pytest.raises(ValueError, match=message):
            env.step(actions)
        env.close()

    def test_every_float_dtype_steps_alike(self) -> None:
        """float32, float64 and bfloat16 actions (the last has no numpy view: read as float32) and an action that
        carries gradients step the envs as the action space's dtype does."""
        actions = torch.tensor([[0.5], [-1.5], [2.0]])
        results = []
        for batch in (actions, actions.double(), actions.bfloat16(), actions.clone().requires_grad_()):
            env = GymnasiumEnv("Pendulum-v1", 3)
            env.reset(seed=4)
            results.append([env.step(batch).observations for _ in range(3)])
            env.close()
        assert all(torch.equal(a, b) for other in results[1:] for a, b in zip(results[0], other, strict=True))


class TestMujoco:
    @pytest.fixture(autouse=True)
    def _in_tmp_dir(self, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        """MuJoCo writes MUJOCO_LOG.TXT into the working directory; keep it out of the repository."""
        monkeypatch.chdir(tmp_path)

    def test_inverted_pendulum_autoreset(self) -> None:
        """InvertedPendulum-v5 ends episodes with the pre-reset final observation, summed returns and lengths."""
        env = GymnasiumEnv("InvertedPendulum-v5", 2, dtype=torch.float64)
        assert env.dt == pytest.approx(0.04)
        assert isinstance(env.action_space, Box) and env.action_space.dim == 1
        env.reset(seed=0)
        returns = torch.zeros(2, dtype=torch.float64)
        lengths = torch.zeros(2, dtype=torch.long)
        ends = 0
        for _ in range(80):
            result = env.step(torch.full((2, 1), 3.0, dtype=torch.float64))
            returns += result.rewards
            lengths += 1
            done = result.terminated | result.truncated
            if bool(done.any()):
                assert bool(result.terminated[done].all())
                # The pole angle (obs[1]) ended beyond InvertedPendulum's 0.2 rad; the reset one is near upright.
                assert bool((result.final_observations[done, 1].abs() > 0.2).all())
                assert bool((result.observations[done, 1].abs() < 0.02).all())
                assert torch.allclose(result.episode_returns, returns[done])
                assert torch.equal(result.episode_lengths, lengths[done])
                ends += int(done.sum())
                returns[done] = 0
                lengths[done] = 0
        assert ends >= 2
        env.close()

    def test_half_cheetah_continuous_actions(self) -> None:
        """HalfCheetah-v5 takes [N, 6] float actions, returns [N, 17] observations and dt 0.05."""
        env = GymnasiumEnv("HalfCheetah-v5", 2)
        assert env.observation_space.dim == 17 and env.dt == pytest.approx(0.05)
        env.reset(seed=0)
        result = env.step(torch.zeros(2, 6))
        assert result.observations.shape == (2, 17) and result.rewards.shape == (2,)
        with pytest.raises(ValueError, match=r"shape \[2, 6\], got shape \[2, 5\]"):
            env.step(torch.zeros(2, 5))
        env.close()


class TestAsync:
    def test_async_matches_sync(self) -> None:
        """Async vectorization gives the same observations as sync for the same seed and actions."""
        results = []
        for mode in ("sync", "async"):
            env = GymnasiumEnv("CartPole-v1", 2, vectorization=mode)
            observations = [env.reset(seed=3)]
            observations += [env.step(torch.tensor([1, 0])).observations for _ in range(15)]
            results.append(torch.stack(observations))
            env.close()
        assert torch.equal(results[0], results[1])

    def test_dead_worker_raises_runtime_error_naming_task(self) -> None:
        """A killed async worker surfaces as RuntimeError naming the task, and close() still succeeds."""
        before = set(multiprocessing.active_children())
        env = GymnasiumEnv("CartPole-v1", 2, vectorization="async")
        env.reset(seed=0)
        workers = [process for process in multiprocessing.active_children() if process not in before]
        assert len(workers) == 2
        worker = workers[0]
        worker.kill()
        worker.join()
        with pytest.raises(RuntimeError, match="'CartPole-v1'.*worker process.*died"):
            env.step(torch.tensor([0, 1]))
        env.close()


class FakeTorchBatchedEnv(gymnasium.Env):
    """An already-batched torch env (Isaac Lab style): a point pushed along a line, ending past 1 or after 5 steps.

    Args:
        num_envs: number of envs in the batch.
        report_final: whether ``info["final_obs"]`` carries the pre-reset observations.
    """

    def __init__(self, num_envs: int = 4, report_final: bool = True) -> None:
        self.num_envs = num_envs
        self.report_final = report_final
        self.single_observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.single_action_space = gymnasium.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.observation_space = self.single_observation_space
        self.action_space = self.single_action_space
        self.metadata = {"render_fps": 25}
        self.position = torch.zeros(num_envs)
        self.steps = torch.zeros(num_envs, dtype=torch.long)

    def _obs(self) -> torch.Tensor:
        return torch.stack((self.position, self.steps.float()), dim=1)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[torch.Tensor, dict]:
        self.position = torch.zeros(self.num_envs)
        self.steps = torch.zeros(self.num_envs, dtype=torch.long)
        return self._obs(), {}

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        assert isinstance(action, torch.Tensor) and action.shape == (self.num_envs, 1)
        self.position = self.position + action[:, 0]
        self.steps = self.steps + 1
        terminated = self.position.abs() > 1.0
        truncated = self.steps >= 5
        final = self._obs()
        done = terminated | truncated
        self.position = self.position.masked_fill(done, 0.0)
        self.steps = self.steps.masked_fill(done, 0)
        info = {"final_obs": final} if self.report_final else {}
        return self._obs(), self.position.abs() + 1.0, terminated, truncated, info


gymnasium.register(id="DnneTestTorchBatched-v0", entry_point=FakeTorchBatchedEnv)


class TestAlreadyBatchedTorchEnv:
    def test_wrapped_without_second_vectorization(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A registered env that is already batched in torch is wrapped as is (Gymnasium's vectorization is never
        called), with its spaces and dt."""

        def refuse(*args: Any, **kwargs: Any) -> None:
            raise AssertionError("an already-batched env was vectorized again")

        monkeypatch.setattr(gymnasium, "make_vec", refuse)
        env = GymnasiumEnv("DnneTestTorchBatched-v0", 4)
        assert env.observation_space.dim == 2 and env.action_space.dim == 1
        assert env.dt == pytest.approx(1 / 25)
        assert env.reset(seed=0).shape == (4, 2)

    def test_final_observations_and_episodes(self) -> None:
        """The env's info['final_obs'] becomes final_observations of ended envs; returns and lengths are tracked."""
        env = GymnasiumEnv("DnneTestTorchBatched-v0", 4)
        env.reset(seed=0)
        push = torch.tensor([[0.6], [0.1], [-0.6], [0.0]])
        result = env.step(push)
        assert not bool((result.terminated | result.truncated).any())
        result = env.step(push)
        assert result.terminated.tolist() == [True, False, True, False]
        assert torch.allclose(result.final_observations[0], torch.tensor([1.2, 2.0]))
        assert torch.allclose(result.observations[0], torch.tensor([0.0, 0.0]))
        assert torch.equal(result.final_observations[1], result.observations[1])
        assert result.episode_lengths.tolist() == [2, 2]
        for _ in range(3):
            result = env.step(push)
        assert result.truncated.tolist() == [False, True, False, True]
        assert result.episode_lengths.tolist() == [5, 5]

    def test_missing_final_observations_warn_once(self) -> None:
        """An env without info['final_obs'] warns once, at the first episode end, and reuses the observations."""
        env = GymnasiumEnv("DnneTestTorchBatched-v0", 4, env_kwargs={"report_final": False})
        env.reset(seed=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(10):
                result = env.step(torch.full((4, 1), 0.6))
        messages = [str(w.message) for w in caught if "final observations" in str(w.message)]
        assert len(messages) == 1 and "'DnneTestTorchBatched-v0'" in messages[0]
        assert torch.equal(result.final_observations, result.observations)

    def test_num_envs_mismatch(self) -> None:
        """Asking for another number of envs than the batched env has raises ValueError saying how to set it."""
        with pytest.raises(ValueError, match="already batched with 4 envs but 8 were asked for; .*env_kwargs"):
            GymnasiumEnv("DnneTestTorchBatched-v0", 8)
