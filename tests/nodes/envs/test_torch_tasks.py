"""Built-in tensor tasks: equality with Gymnasium, autoreset, episode statistics, seeding and exact resume."""
from __future__ import annotations

import math

import gymnasium
import numpy as np
import pytest
import torch

from dnne.nodes.envs.base import StepResult, TensorTask
from dnne.nodes.envs.cartpole import Cartpole
from dnne.nodes.envs.cartpole_isaac import CartpoleIsaac
from dnne.nodes.envs.pendulum import Pendulum

TASKS = [Cartpole, Pendulum, CartpoleIsaac]


def random_actions(env: TensorTask, generator: torch.Generator) -> torch.Tensor:
    """A batch of valid random actions for ``env``, reproducible from ``generator``."""
    if isinstance(env, Cartpole):
        return torch.randint(0, 2, (env.num_envs,), generator=generator)
    high = env.action_space.high.to(torch.float32)
    return (torch.rand((env.num_envs, 1), generator=generator) * 2 - 1) * high * 0.5


def results_equal(a: StepResult, b: StepResult) -> bool:
    """Whether two step results are bit-identical, field by field."""
    return all(torch.equal(getattr(a, f), getattr(b, f)) for f in StepResult.__dataclass_fields__)


class TestCartpoleMatchesGymnasium:
    def test_single_steps_from_same_states(self) -> None:
        """From any state, one step equals Gymnasium's CartPole-v1 next state to 1e-12 with the same terminated flag."""
        rng = np.random.default_rng(0)
        reference = gymnasium.make("CartPole-v1").unwrapped
        reference.reset(seed=0)
        n = 256
        states = rng.uniform([-2.6, -3, -0.25, -3], [2.6, 3, 0.25, 3], size=(n, 4))
        actions = rng.integers(0, 2, size=n)
        env = Cartpole(n, dtype=torch.float64)
        env.reset(seed=0)
        env.set_state(torch.tensor(states))
        result = env.step(torch.tensor(actions))
        for i in range(n):
            reference.state = states[i].copy()
            reference.steps_beyond_terminated = None
            _, reward, terminated, _, _ = reference.step(int(actions[i]))
            np.testing.assert_allclose(result.final_observations[i].numpy(), reference.state, rtol=0, atol=1e-12)
            assert bool(result.terminated[i]) == terminated
            assert result.rewards[i].item() == reward
        assert 0 < int(result.terminated.sum()) < n

    def test_trajectories_with_terminations_and_truncations(self) -> None:
        """1500 steps of 4 envs track 4 Gymnasium envs: same flags, states to 1e-10, both kinds of episode end."""
        n = 4
        references = [gymnasium.make("CartPole-v1") for _ in range(n)]
        env = Cartpole(n, dtype=torch.float64)
        observations = env.reset(seed=1)
        for i, reference in enumerate(references):
            reference.reset(seed=i)
            reference.unwrapped.state = observations[i].numpy().copy()
        rng = np.random.default_rng(1)
        ends = {"terminated": 0, "truncated": 0}
        for _ in range(1500):
            state = env.get_state().numpy()
            # A balancing rule with 10% random actions ends episodes both ways.
            actions = np.where(state[:, 2] + 0.5 * state[:, 3] > 0, 1, 0)
            explore = rng.random(n) < 0.1
            actions[explore] = rng.integers(0, 2, size=int(explore.sum()))
            result = env.step(torch.tensor(actions))
            for i, reference in enumerate(references):
                _, _, terminated, truncated, _ = reference.step(int(actions[i]))
                truncated = truncated and not terminated
                assert bool(result.terminated[i]) == terminated
                assert bool(result.truncated[i]) == truncated
                np.testing.assert_allclose(
                    result.final_observations[i].numpy(), reference.unwrapped.state, rtol=0, atol=1e-10
                )
                if terminated or truncated:
                    ends["terminated" if terminated else "truncated"] += 1
                    reference.reset()
                    reference.unwrapped.state = result.observations[i].numpy().copy()
        assert ends["terminated"] > 0 and ends["truncated"] > 0, ends


class TestPendulumMatchesGymnasium:
    def test_single_steps_from_same_states(self) -> None:
        """From any state and torque (clipped or not), one step equals Pendulum-v1's state and reward to 1e-12."""
        rng = np.random.default_rng(2)
        reference = gymnasium.make("Pendulum-v1").unwrapped
        reference.reset(seed=0)
        n = 256
        states = rng.uniform([-10, -8], [10, 8], size=(n, 2))
        actions = rng.uniform(-3, 3, size=(n, 1))
        env = Pendulum(n, dtype=torch.float64)
        env.reset(seed=0)
        env.set_state(torch.tensor(states))
        result = env.step(torch.tensor(actions))
        for i in range(n):
            reference.state = states[i].copy()
            observation, reward, _, _, _ = reference.step(actions[i])
            np.testing.assert_allclose(env.get_state()[i].numpy(), reference.state, rtol=0, atol=1e-12)
            assert result.rewards[i].item() == pytest.approx(reward, abs=1e-12)
            np.testing.assert_allclose(result.observations[i].numpy(), observation, rtol=0, atol=1e-6)
        assert not bool(result.terminated.any())

    def test_trajectories_truncate_at_200(self) -> None:
        """Same torques from the same state track Gymnasium for 450 steps; both truncate at 200, never terminate."""
        reference = gymnasium.make("Pendulum-v1")
        env = Pendulum(1, dtype=torch.float64)
        env.reset(seed=3)
        reference.reset(seed=0)
        reference.unwrapped.state = env.get_state()[0].numpy().copy()
        rng = np.random.default_rng(3)
        truncations = 0
        for _ in range(450):
            action = rng.uniform(-2.5, 2.5, size=(1,))
            result = env.step(torch.tensor(action)[None])
            _, reward, terminated, truncated, _ = reference.step(action)
            assert not terminated and not bool(result.terminated[0])
            assert bool(result.truncated[0]) == truncated
            assert result.rewards[0].item() == pytest.approx(reward, abs=1e-10)
            final_th = math.atan2(result.final_observations[0, 1].item(), result.final_observations[0, 0].item())
            assert math.remainder(final_th - reference.unwrapped.state[0], 2 * math.pi) == pytest.approx(0, abs=1e-10)
            if truncated:
                truncations += 1
                assert result.episode_lengths.tolist() == [200]
                reference.reset()
                reference.unwrapped.state = env.get_state()[0].numpy().copy()
        assert truncations == 2


class TestAutoreset:
    @pytest.mark.parametrize("task", TASKS)
    def test_final_observations_are_pre_reset(self, task: type[TensorTask]) -> None:
        """Where an episode ends, final_observations continue the trajectory and observations restart it."""
        env = task(64, max_episode_steps=30)
        env.reset(seed=0)
        generator = torch.Generator().manual_seed(0)
        ended = 0
        for _ in range(100):
            state_before = env.get_state()
            actions = random_actions(env, generator)
            expected_next, _, _ = env._advance(state_before, env.check_actions(actions))
            result = env.step(actions)
            done = result.terminated | result.truncated
            assert not bool((result.terminated & result.truncated).any())
            assert torch.equal(result.final_observations, env._observe(expected_next))
            assert torch.equal(result.observations[~done], result.final_observations[~done])
            if bool(done.any()):
                assert not torch.equal(result.observations[done], result.final_observations[done])
            ended += int(done.sum())
        assert ended > 0

    @pytest.mark.parametrize("task", TASKS)
    def test_reset_states_come_from_the_reset_distribution(self, task: type[TensorTask]) -> None:
        """Fresh episodes start inside the documented reset ranges, both at reset() and after an automatic reset."""
        bounds = {Cartpole: [0.05] * 4, Pendulum: [math.pi, 1.0], CartpoleIsaac: [0.1, 0.25, 0.1, 0.25]}[task]
        high = torch.tensor(bounds)
        env = task(512, max_episode_steps=3)
        env.reset(seed=0)
        assert bool((env.get_state().abs() <= high).all())
        generator = torch.Generator().manual_seed(0)
        for _ in range(3):
            env.step(random_actions(env, generator))
        state = env.get_state()
        assert bool((state.abs() <= high).all())
        assert float(state.abs().amax(0).min()) > 0.5 * min(bounds)

    @pytest.mark.parametrize("task", TASKS)
    def test_episode_returns_and_lengths(self, task: type[TensorTask]) -> None:
        """Reported returns and lengths equal the rewards and steps summed per env since its last reset."""
        env = task(16, max_episode_steps=25)
        env.reset(seed=4)
        generator = torch.Generator().manual_seed(4)
        running_return = torch.zeros(16, dtype=torch.float64)
        running_length = torch.zeros(16, dtype=torch.long)
        reported = 0
        for _ in range(80):
            result = env.step(random_actions(env, generator))
            running_return += result.rewards.double()
            running_length += 1
            done = result.terminated | result.truncated
            assert torch.allclose(result.episode_returns.double(), running_return[done], atol=1e-4)
            assert torch.equal(result.episode_lengths, running_length[done])
            assert result.episode_lengths.dtype == torch.long
            reported += int(done.sum())
            running_return[done] = 0
            running_length[done] = 0
        assert reported > 0

    @pytest.mark.parametrize("task", TASKS)
    def test_returned_tensors_are_never_modified(self, task: type[TensorTask]) -> None:
        """Tensors returned by reset and step keep their values through later steps and resets."""
        env = task(32, max_episode_steps=5)
        first = env.reset(seed=0)
        first_copy = first.clone()
        generator = torch.Generator().manual_seed(0)
        kept = [env.step(random_actions(env, generator)) for _ in range(3)]
        copies = [{f: getattr(result, f).clone() for f in StepResult.__dataclass_fields__} for result in kept]
        for _ in range(10):
            env.step(random_actions(env, generator))
        env.reset(seed=1)
        assert torch.equal(first, first_copy)
        for result, copy in zip(kept, copies):
            assert all(torch.equal(getattr(result, f), copy[f]) for f in copy)

    def test_cartpole_truncates_at_500(self) -> None:
        """A balanced Cartpole episode is truncated (not terminated) at exactly 500 steps with return 500."""
        env = Cartpole(1)
        env.reset(seed=0)
        for step in range(1, 501):
            state = env.get_state()[0]
            result = env.step(torch.tensor([int(state[2] + 0.5 * state[3] > 0)]))
            if step < 500:
                assert not bool(result.truncated[0] | result.terminated[0]), step
        assert bool(result.truncated[0]) and not bool(result.terminated[0])
        assert result.episode_returns.tolist() == [500.0] and result.episode_lengths.tolist() == [500]


class TestSeedingAndResume:
    @pytest.mark.parametrize("task", TASKS)
    def test_same_seed_same_run(self, task: type[TensorTask]) -> None:
        """Envs reset with the same seed and fed the same actions give identical runs; another seed differs."""
        runs = []
        for seed in (7, 7, 8):
            env = task(8, max_episode_steps=10)
            observations = [env.reset(seed=seed)]
            generator = torch.Generator().manual_seed(0)
            observations += [env.step(random_actions(env, generator)).observations for _ in range(30)]
            runs.append(torch.stack(observations))
        assert torch.equal(runs[0], runs[1])
        assert not torch.equal(runs[0], runs[2])

    @pytest.mark.parametrize("task", TASKS)
    def test_state_dict_round_trip_is_exact(self, task: type[TensorTask]) -> None:
        """Save, load into a fresh env and step: bit-identical to continuing, resets and episode statistics included."""
        env = task(16, max_episode_steps=12)
        env.reset(seed=5)
        generator = torch.Generator().manual_seed(5)
        for _ in range(7):
            env.step(random_actions(env, generator))
        saved = env.state_dict()
        actions = [random_actions(env, generator) for _ in range(40)]
        continued = [env.step(a) for a in actions]
        restored_env = task(16, max_episode_steps=12)
        restored_env.load_state_dict(saved)
        resumed = [restored_env.step(a) for a in actions]
        assert all(results_equal(a, b) for a, b in zip(continued, resumed))
        assert sum(r.episode_lengths.numel() for r in resumed) > 0
        assert env.supports_state

    def test_load_rejects_wrong_num_envs(self) -> None:
        """Loading a state saved with another number of envs fails with a message giving both shapes."""
        env = Cartpole(4)
        env.reset(seed=0)
        with pytest.raises(ValueError, match=r"expected shape \[8, 4\], got \[4, 4\]"):
            Cartpole(8).load_state_dict(env.state_dict())

    def test_step_before_reset_fails(self) -> None:
        """Stepping an env that was never reset raises an error saying to call reset()."""
        with pytest.raises(RuntimeError, match="call reset"):
            Cartpole(2).step(torch.zeros(2, dtype=torch.long))


class TestCartpoleIsaac:
    def test_spaces_and_dt(self) -> None:
        """The action space is the force box [-400, 400] N, observations are clipped to +-5, dt is 1/60."""
        env = CartpoleIsaac(2)
        assert env.action_space.low.tolist() == [-400.0] and env.action_space.high.tolist() == [400.0]
        assert env.observation_space.high.tolist() == [5.0] * 4
        assert env.dt == pytest.approx(1 / 60)

    def test_force_is_newtons_clipped_not_rescaled(self) -> None:
        """From rest upright, one step of force F moves the cart at about F / M * dt; forces beyond 400 N act as 400."""
        env = CartpoleIsaac(3, dtype=torch.float64)
        env.reset(seed=0)
        env.set_state(torch.zeros(3, 4, dtype=torch.float64))
        env.step(torch.tensor([[1.0], [100.0], [1e6]], dtype=torch.float64))
        cart_velocity = env.get_state()[:, 1]
        expected = torch.tensor([1.0, 100.0, 400.0], dtype=torch.float64) / env.cart_mass * env.dt
        assert torch.allclose(cart_velocity, expected, rtol=1e-2)

    def test_free_motion_conserves_momentum_and_energy(self) -> None:
        """Unforced, the stated equations conserve momentum and energy: finer substeps converge to both."""

        def invariants(state: torch.Tensor) -> torch.Tensor:
            x_dot, theta, theta_dot = state[0, 1], state[0, 2], state[0, 3]
            m, l = CartpoleIsaac.pole_mass, CartpoleIsaac.pole_com
            total = CartpoleIsaac.cart_mass + m
            coupling = m * l * torch.cos(theta) * theta_dot
            momentum = total * x_dot - coupling
            kinetic = 0.5 * total * x_dot**2 - coupling * x_dot + 0.5 * m * l**2 * theta_dot**2
            return torch.stack((momentum, kinetic + m * CartpoleIsaac.gravity * l * torch.cos(theta)))

        errors = []
        for substeps in (2, 200):
            env = CartpoleIsaac(1, dtype=torch.float64)
            env.substeps = substeps
            env.reset(seed=0)
            env.set_state(torch.tensor([[0.0, 0.3, 0.2, 0.0]], dtype=torch.float64))
            start = invariants(env.get_state())
            for _ in range(24):
                assert not bool(env.step(torch.zeros(1, 1, dtype=torch.float64)).terminated[0])
            assert env.get_state()[0, 2].item() > 1.0
            errors.append((invariants(env.get_state()) - start).abs())
        assert bool((errors[1] < 1e-3).all()), errors
        assert bool((errors[1] < errors[0] / 20).all()), errors

    def test_reward_failure_and_observation_clip(self) -> None:
        """Reward is 1 - a^2 - 0.01|v| - 0.005|w| while upright; -2 and terminated past 3 m or pi/2; obs clip at 5."""
        env = CartpoleIsaac(3, dtype=torch.float64)
        env.reset(seed=0)
        states = torch.tensor(
            [[0.5, 0.2, 0.1, -0.3], [2.99, 12.0, 0.0, 0.0], [0.0, 0.0, 1.6, 7.0]], dtype=torch.float64
        )
        next_states = env.dynamics(states, torch.zeros(3, dtype=torch.float64))
        env.set_state(states)
        result = env.step(torch.zeros(3, 1, dtype=torch.float64))
        x, v, a, w = next_states[0]
        expected = 1 - a.item() ** 2 - 0.01 * abs(v.item()) - 0.005 * abs(w.item())
        assert result.rewards[0].item() == pytest.approx(expected)
        assert result.terminated.tolist() == [False, True, True]
        assert result.rewards[1:].tolist() == [-2.0, -2.0]
        assert torch.equal(result.final_observations, next_states.clamp(-5, 5))
        assert result.final_observations[1, 1].item() == 5.0
