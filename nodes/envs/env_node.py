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
    declares = ("observation_space", "action_space", "num_envs", "env_device")

    observations = Output("Tensor", "the first observations [num_envs, obs_dim], stamped 0")
    env_handle = Output("EnvHandle", "the running environment, for step and action nodes", aliases=("sim_handle",))

    backend = Param(str, "torch", "torch (built-in tasks), gymnasium or isaacgym", choices=BACKENDS)
    task = Param(str, "Cartpole", "task: Cartpole, Pendulum, CartpoleIsaac, PointMassNav, PointMassMaze, CartpoleNoVel, "
                 "PendulumNoVel, GridReach (torch), or a "
                 "Gymnasium id (MinAtar/Breakout-v1 and siblings with the minatar extra) / Isaac Gym id")
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
        self.recipe: dict[str, Any] = {}

    @classmethod
    def check_params(cls, params: dict[str, Any], trusted: dict[str, Any]) -> list[tuple[str, str | None, str]]:
        """Static checks of a Gymnasium env (run by validation): an id that would import a module the command line
        did not allow, an id Gymnasium does not know, ``env_kwargs`` keys its constructor does not take."""
        if params.get("backend") != "gymnasium":
            return []
        try:
            from .gym_backend import env_kwargs_problems, refused_module
        except ImportError:
            return []  # setup reports the missing package
        task = str(params.get("task"))
        refusal = refused_module(task, trusted.get("allowed_modules", ()))
        if refusal is not None:
            return [("module_not_allowed", "task", refusal)]
        return env_kwargs_problems(task, params.get("env_kwargs") or {})

    @classmethod
    def static_declarations(cls, params: dict[str, Any], trusted: dict[str, Any]) -> dict[str, Any]:
        """The spaces setup will declare, found before running (``dnne.runtime.wiring``) by building one env of
        the task on the CPU: built-in tasks, and Gymnasium ids whose module the command line allows. Nothing for a
        node type that substitutes its task, another backend, or an env that cannot be built here (setup reports
        why)."""
        if cls.backend_and_task is not EnvNode.backend_and_task:
            return {}
        from .spaces_probe import probe_spaces

        return probe_spaces(str(params.get("backend")), str(params.get("task")), params.get("env_kwargs") or {},
                            trusted.get("allowed_modules", ()))

    def env_options(self, backend: str) -> dict[str, Any]:
        """Backend options beyond backend, task, count and device."""
        options = dict(self.env_kwargs or {})
        if backend == "gymnasium":
            options = {"vectorization": self.vectorization, "env_kwargs": options,
                       "allowed_modules": self.ctx.settings.get("allowed_modules", ())}
            video = self.ctx.settings.get("video_dir") if self.ctx.mode == "play" else None
            if video:
                options["record_dir"] = str(video)
                options["record_format"] = self.ctx.settings.get("video_format") or "mp4"
        elif backend != "torch" and self.ctx.mode == "play" and self.ctx.settings.get("video_dir"):
            self.ctx.warn(f"the {backend} backend cannot render; --video records nothing for this env")
        return options

    def _filmed(self, env: BatchedEnv) -> Any:
        """The built-in task with its env 0 recorded (``dnne play --video``), or as it is when it has no renderer."""
        from .recorder import EpisodeRecorder
        from .render import RecordingEnv, renderer_for

        renderer = renderer_for(env)
        if renderer is None:
            self.ctx.warn(f"{type(env).__name__} cannot render; --video records nothing for this env")
            return env
        recorder = EpisodeRecorder(self.ctx.settings["video_dir"], 1 / env.dt if env.dt > 0 else 30.0,
                                   self.ctx.settings.get("video_format") or "mp4")
        return RecordingEnv(env, recorder, renderer)

    def backend_and_task(self) -> tuple[str, str]:
        """The backend and task to build (DNNE-named subclasses may substitute)."""
        return self.backend, self.task

    async def setup(self) -> None:
        """Build and reset the environment; declare its spaces."""
        device, warning = resolve_device(self.device or self.ctx.device)
        if warning:
            self.ctx.warn(warning)
        backend, task = self.backend_and_task()
        options = self.env_options(backend)
        self.env = make_env(backend, task, self.num_envs, str(device), **options)
        # How to build this env again (an evaluation node's own instances), without the play-only recording.
        self.recipe = {"backend": backend, "task": task, "device": str(device),
                       "options": {k: v for k, v in options.items() if k not in ("record_dir", "record_format")}}
        if backend == "torch" and self.ctx.mode == "play" and self.ctx.settings.get("video_dir"):
            self.env = self._filmed(self.env)
        seed = self.seed if self.seed is not None else self.ctx.seed % 2**31
        self.first_observations = self.env.reset(seed=seed)
        self.declare("observation_space", self.env.observation_space)
        self.declare("action_space", self.env.action_space)
        self.declare("num_envs", self.env.num_envs)
        self.declare("env_device", self.env.device)
        self._check_target(task)

    def _check_target(self, task: str) -> None:
        """Warn when the run's target return looks meant for another task: it is above the threshold at which the
        env counts as solved (a file's target kept after retargeting, say CartPole's 475 on Acrobot, whose returns
        are negative), so the run would likely go on to its step budget."""
        target = self.ctx.settings.get("target_return")
        threshold = getattr(self.env, "reward_threshold", None)
        if target is not None and threshold is not None and float(target) > float(threshold):
            self.ctx.warn(f"run.target_return is {target} but {task} counts as solved at {threshold}: the target "
                          f"looks set for another task and may be out of reach; set --set "
                          f"run.target_return={threshold} (or null to run to the step budget)")

    async def run(self) -> None:
        """Emit the handle, then the first observations, and end."""
        assert self.env is not None
        await self.emit("env_handle", EnvHandle(self.env, {"node": self.id, "make": self.recipe}))
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
