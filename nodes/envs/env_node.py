"""``EnvNode``: builds a batched environment, emits its handle and first observations once."""
from __future__ import annotations

from typing import Any

import torch

from dnne.runtime.node import Node
from dnne.runtime.ports import Output, Param

from ..types import EnvHandle
from .base import BatchedEnv
from .registry import BACKENDS, make_env, resolve_device


class EnvNode(Node):
    """A source of batched environments: emits ``env_handle`` and the first ``observations`` once, then ends.

    Declares ``observation_space``, ``action_space`` and ``num_envs`` at setup so downstream nodes (the agent)
    size themselves. Environments are never reset here again: the step node resets finished episodes.
    """

    category = "envs"

    observations = Output("Tensor", "the first observations [num_envs, obs_dim], stamped 0")
    env_handle = Output("EnvHandle", "the running environment, for step and action nodes", aliases=("sim_handle",))

    backend = Param(str, "torch", "torch (built-in tasks), gymnasium or isaacgym", choices=BACKENDS)
    task = Param(str, "Cartpole", "task: Cartpole, Pendulum, CartpoleIsaac, PointMassNav, CartpoleNoVel, "
                 "PendulumNoVel, GridReach (torch), or a "
                 "Gymnasium / Isaac Gym id")
    num_envs = Param(int, 64, "number of environments stepped together", ge=1, le=65536)
    device = Param(str, None, "cpu or cuda; default: the run's device", nullable=True)
    seed = Param(int, None, "env seed; default: derived from the run seed and the node id", ge=0, lt=2**63,
                 nullable=True)
    vectorization = Param(str, "sync", "gymnasium only: sync, or async (one subprocess per env)",
                          choices=("sync", "async"))
    env_kwargs = Param(dict, None, "extra keyword arguments of the env constructor", nullable=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.env: BatchedEnv | None = None
        self.first_observations: torch.Tensor | None = None

    def env_options(self, backend: str) -> dict[str, Any]:
        """Backend options beyond backend, task, count and device."""
        options = dict(self.env_kwargs or {})
        if backend == "gymnasium":
            options = {"vectorization": self.vectorization, "env_kwargs": options}
            video = self.ctx.settings.get("video_dir") if self.ctx.mode == "play" else None
            if video:
                options["record_dir"] = str(video)
        elif self.ctx.mode == "play" and self.ctx.settings.get("video_dir"):
            self.ctx.warn(f"the {backend} backend cannot render; --video records nothing for this env")
        return options

    def backend_and_task(self) -> tuple[str, str]:
        """The backend and task to build (DNNE-named subclasses may substitute)."""
        return self.backend, self.task

    async def setup(self) -> None:
        """Build and reset the environment; declare its spaces."""
        device, warning = resolve_device(self.device or self.ctx.device)
        if warning:
            self.ctx.warn(warning)
        backend, task = self.backend_and_task()
        self.env = make_env(backend, task, self.num_envs, str(device), **self.env_options(backend))
        seed = self.seed if self.seed is not None else self.ctx.seed % 2**31
        self.first_observations = self.env.reset(seed=seed)
        self.declare("observation_space", self.env.observation_space)
        self.declare("action_space", self.env.action_space)
        self.declare("num_envs", self.env.num_envs)
        self.declare("env_device", self.env.device)

    async def run(self) -> None:
        """Emit the handle, then the first observations, and end."""
        assert self.env is not None
        await self.emit("env_handle", EnvHandle(self.env, {"node": self.id}))
        await self.emit("observations", self.first_observations, stamp=0)

    def state_dict(self) -> dict[str, Any] | None:
        """The environment's state where the backend can save it (the built-in tasks); ``None`` otherwise, and a
        resumed run then starts from fresh resets."""
        if self.env is None or not self.env.supports_state:
            return None
        return {"env": self.env.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the environment; the first observations emitted are then those of the restored state."""
        assert self.env is not None
        self.env.load_state_dict(state["env"])
        self.first_observations = self.env.current_observations()

    async def teardown(self) -> None:
        """Close the environment."""
        if self.env is not None:
            self.env.close()
