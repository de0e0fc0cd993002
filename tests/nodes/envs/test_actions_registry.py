"""Shared action validation, spaces, the backend registry and device resolution."""
from __future__ import annotations

import pytest
import torch

from dnne.nodes.envs.base import BatchedEnv
from dnne.nodes.envs.cartpole import Cartpole
from dnne.nodes.envs.cartpole_isaac import CartpoleIsaac
from dnne.nodes.envs.pendulum import Pendulum
from dnne.nodes.envs.registry import TORCH_TASKS, make_env, resolve_device
from dnne.nodes.envs.spaces import Box, Discrete


class TestSpaces:
    def test_box_shape_dim_and_equality(self) -> None:
        """A Box reports its shape and dim, and equal bounds make equal boxes."""
        box = Box(torch.tensor([-1.0, -2.0]), torch.tensor([1.0, 2.0]))
        assert box.shape == (2,) and box.dim == 2
        assert box == Box(torch.tensor([-1.0, -2.0]), torch.tensor([1.0, 2.0]))
        assert box != Box(torch.tensor([-1.0, -2.0]), torch.tensor([1.0, 3.0]))

    @pytest.mark.parametrize(
        ("low", "high", "message"),
        [
            (torch.zeros(2, 2), torch.ones(2, 2), "1-d float"),
            (torch.zeros(2, dtype=torch.long), torch.ones(2, dtype=torch.long), "1-d float"),
            (torch.zeros(2), torch.ones(3), "differ in shape"),
            (torch.ones(2), torch.zeros(2), "low > high"),
        ],
    )
    def test_box_rejects_bad_bounds(self, low: torch.Tensor, high: torch.Tensor, message: str) -> None:
        """Malformed box bounds are refused with a message naming the problem."""
        with pytest.raises(ValueError, match=message):
            Box(low, high)

    def test_discrete(self) -> None:
        """A Discrete space is scalar-shaped and needs a positive count."""
        assert Discrete(3).shape == ()
        with pytest.raises(ValueError, match="positive int"):
            Discrete(0)


def make_ready(task: type[BatchedEnv]) -> BatchedEnv:
    """Four envs of ``task``, reset with seed 0."""
    env = task(4)
    env.reset(seed=0)
    return env


class TestActionValidation:
    @pytest.mark.parametrize(
        ("actions", "message"),
        [
            (
                torch.zeros(3, dtype=torch.long),
                r"expected discrete actions of shape \[4\] or \[4, 1\], got shape \[3\]",
            ),
            (torch.zeros(4, 2, dtype=torch.long), r"shape \[4\] or \[4, 1\], got shape \[4, 2\]"),
            (torch.zeros(4), r"integer dtype .*got shape \[4\] dtype torch.float32"),
            (torch.zeros(4, dtype=torch.bool), "integer dtype"),
            (torch.tensor([0, 1, 2, 0]), r"must be in \[0, 2\), got \[2\] in env\(s\) \[2\]"),
            ([0, 1, 0, 1], "expected actions as a torch.Tensor, got list"),
        ],
    )
    def test_discrete_rejections(self, actions: object, message: str) -> None:
        """Discrete actions with a wrong shape, dtype, range or type raise ValueError saying expected versus got."""
        with pytest.raises(ValueError, match=message):
            make_ready(Cartpole).step(actions)  # type: ignore[arg-type]

    def test_discrete_accepts_column_and_any_int_dtype(self) -> None:
        """[N, 1] and int32 discrete actions step the same as [N] long ones."""
        a, b = make_ready(Cartpole), make_ready(Cartpole)
        actions = torch.tensor([0, 1, 1, 0])
        assert torch.equal(a.step(actions).observations, b.step(actions.int()[:, None]).observations)

    @pytest.mark.parametrize("task", [Pendulum, CartpoleIsaac])
    @pytest.mark.parametrize(
        ("actions", "message"),
        [
            (torch.zeros(4), r"expected continuous actions of shape \[4, 1\], got shape \[4\]"),
            (torch.zeros(4, 1, dtype=torch.long), "float dtype, got shape"),
            (torch.tensor([[0.0], [float("nan")], [0.0], [0.0]]), r"NaN or infinity in env\(s\) \[1\]"),
            (torch.tensor([[0.0], [0.0], [0.0], [float("inf")]]), r"NaN or infinity in env\(s\) \[3\]"),
        ],
    )
    def test_continuous_rejections(self, task: type[BatchedEnv], actions: torch.Tensor, message: str) -> None:
        """Box actions with a wrong shape or dtype, or with NaN or infinity, raise ValueError naming the problem."""
        with pytest.raises(ValueError, match=message):
            make_ready(task).step(actions)

    def test_actions_carrying_gradients_do_not_leak_into_observations(self) -> None:
        """Actions that require grad (an undetached policy output) give observations without autograd history."""
        env = make_ready(Pendulum)
        result = env.step(torch.zeros(4, 1, requires_grad=True))
        assert not result.observations.requires_grad and not result.rewards.requires_grad


class TestRegistry:
    @pytest.mark.parametrize("task", sorted(TORCH_TASKS))
    def test_torch_tasks_by_name_with_options(self, task: str) -> None:
        """make_env builds each built-in task by name and passes options to its constructor."""
        env = make_env("torch", task, 3, "cpu", max_episode_steps=7, dtype=torch.float64)
        assert isinstance(env, TORCH_TASKS[task])
        assert env.num_envs == 3 and env.max_episode_steps == 7  # type: ignore[attr-defined]
        assert env.reset(seed=0).dtype == torch.float64

    def test_unknown_backend_lists_backends(self) -> None:
        """An unknown backend raises ValueError listing the valid backends."""
        with pytest.raises(ValueError, match="unknown env backend 'mujoco'; backends are: torch, gymnasium, isaacgym"):
            make_env("mujoco", "Cartpole", 1, "cpu")

    def test_unknown_torch_task_lists_tasks(self) -> None:
        """An unknown built-in task raises ValueError listing the built-in tasks."""
        with pytest.raises(ValueError, match="unknown torch task 'Acrobot'; built-in tasks are: Cartpole, Pendulum"):
            make_env("torch", "Acrobot", 1, "cpu")

    def test_unknown_gymnasium_id(self) -> None:
        """An unregistered Gymnasium id raises ValueError naming it."""
        with pytest.raises(ValueError, match="unknown Gymnasium env id 'NoSuchEnv-v9'"):
            make_env("gymnasium", "NoSuchEnv-v9", 1, "cpu")

    def test_isaacgym_missing_explains_alternatives(self) -> None:
        """Without Isaac Gym installed, the isaacgym backend raises ImportError saying why and what to use instead."""
        try:
            import isaacgym  # noqa: F401
        except ImportError:
            pass
        else:
            pytest.skip("Isaac Gym is installed here")
        with pytest.raises(ImportError, match=r"GPU-only.*Python up to 3\.8.*placement.*CartpoleIsaac"):
            make_env("isaacgym", "Cartpole", 2, "cpu")


class TestResolveDevice:
    def test_cuda_without_gpu_falls_back_with_warning(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Asking for cuda where CUDA is unavailable gives cpu and a warning naming the request."""
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        device, warning = resolve_device("cuda:0")
        assert device == torch.device("cpu")
        assert warning is not None and "'cuda:0'" in warning and "cpu" in warning

    def test_cpu_and_available_cuda_are_kept(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A cpu request, or cuda where it is available, is returned unchanged without a warning."""
        assert resolve_device("cpu") == (torch.device("cpu"), None)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        assert resolve_device("cuda:1") == (torch.device("cuda:1"), None)
