"""Environment backends by name: ``make_env("torch", "Cartpole", 64, "cpu")``, and device fallback."""
from __future__ import annotations

from typing import Any

import torch

from .base import BatchedEnv
from .cartpole import Cartpole
from .cartpole_isaac import CartpoleIsaac
from .grid_reach import GridReach
from .novel import CartpoleNoVel, PendulumNoVel
from .pendulum import Pendulum
from .point_mass import PointMassNav
from .point_maze import PointMassMaze

TORCH_TASKS: dict[str, type[BatchedEnv]] = {
    "Cartpole": Cartpole,
    "Pendulum": Pendulum,
    "CartpoleIsaac": CartpoleIsaac,
    "PointMassNav": PointMassNav,
    "PointMassMaze": PointMassMaze,
    "CartpoleNoVel": CartpoleNoVel,
    "PendulumNoVel": PendulumNoVel,
    "GridReach": GridReach,
}
BACKENDS = ("torch", "gymnasium", "isaacgym")


def make_env(backend: str, task: str, num_envs: int, device: str, **options: Any) -> BatchedEnv:
    """Create a batched environment.

    Args:
        backend: ``"torch"`` (built-in tasks), ``"gymnasium"`` (any registered id) or ``"isaacgym"`` (IsaacGymEnvs).
        task: the task name within the backend.
        num_envs: number of environments.
        device: device of the returned tensors, e.g. ``"cpu"`` or ``"cuda:0"``.
        **options: keyword arguments of the backend's class (``Cartpole``, ``GymnasiumEnv``, ``IsaacGymEnv``, ...).

    Returns:
        The environment, not yet reset.

    Raises:
        ValueError: unknown backend or built-in task, or unknown Gymnasium id.
        ImportError: the backend's package is missing.
    """
    if backend == "torch":
        if task not in TORCH_TASKS:
            raise ValueError(f"unknown torch task {task!r}; built-in tasks are: {', '.join(TORCH_TASKS)}")
        return TORCH_TASKS[task](num_envs, device=device, **options)
    if backend == "gymnasium":
        # Imported here so that Gymnasium is only needed by graphs that use it.
        from .gym_backend import GymnasiumEnv

        return GymnasiumEnv(task, num_envs, device=device, **options)
    if backend == "isaacgym":
        from .isaacgym_backend import IsaacGymEnv

        return IsaacGymEnv(task, num_envs, device=device, **options)
    raise ValueError(f"unknown env backend {backend!r}; backends are: {', '.join(BACKENDS)}")


def resolve_device(device: str) -> tuple[torch.device, str | None]:
    """The device to run on, falling back to CPU when CUDA is asked for but unavailable.

    Args:
        device: the requested device, e.g. ``"cuda"``, ``"cuda:1"`` or ``"cpu"``.

    Returns:
        ``(device, warning)``: the warning text is ``None`` unless the request was changed.
    """
    requested = torch.device(device)
    if requested.type == "cuda" and not torch.cuda.is_available():
        return torch.device("cpu"), f"device {device!r} was asked for but CUDA is not available; running on cpu"
    return requested, None
