"""DNNE's Isaac Gym node names, with DNNE's sockets and widget order, so DNNE files load unchanged."""
from __future__ import annotations

import importlib.util

from dnne.runtime.node import DnneLayout
from dnne.runtime.ports import Param

from .env_node import EnvNode
from .step_node import StepNode


class IsaacGymEnvNode(EnvNode):
    """DNNE's Isaac Gym env node.

    Runs IsaacGymEnvs tasks when Isaac Gym is importable; without it, ``Cartpole`` runs the built-in
    ``CartpoleIsaac`` (same task, batched torch) with a warning. ``isaac_gym_path`` and ``isaac_gym_envs_path``
    are hints shown in messages, never added to ``sys.path``; ``physics_engine`` and ``headless`` only matter to
    Isaac Gym.
    """

    dnne = DnneLayout(
        inputs=("context",),
        outputs=("sim_handle", "observations", "context"),
        widgets=("env_name", "num_envs", "isaac_gym_path", "isaac_gym_envs_path", "headless", "device",
                 "physics_engine"),
    )
    backend = Param(str, "isaacgym", "isaacgym, or torch to force the built-in task", choices=("isaacgym", "torch"))
    task = Param(str, "Cartpole", "Isaac Gym task name", aliases=("env_name",))
    num_envs = Param(int, 64, "number of environments", ge=1, le=65536)
    isaac_gym_path = Param(str, "", "where Isaac Gym lives (a hint for messages only)")
    isaac_gym_envs_path = Param(str, "", "where IsaacGymEnvs lives (a hint for messages only)")
    headless = Param(bool, True, "run without a viewer")
    device = Param(str, None, "cuda or cpu", nullable=True, choices=("cuda", "cpu", None))
    physics_engine = Param(str, "physx", "physx or flex (Isaac Gym only)", choices=("physx", "flex"))

    def env_options(self, backend: str) -> dict[str, object]:
        """Isaac Gym options, or none for the built-in task."""
        if backend == "torch":
            return {}
        return {"headless": self.headless, "physics_engine": self.physics_engine}

    def backend_and_task(self) -> tuple[str, str]:
        """Isaac Gym when importable; the built-in ``CartpoleIsaac`` for ``Cartpole`` otherwise."""
        if self.backend == "isaacgym" and importlib.util.find_spec("isaacgym") is not None:
            return "isaacgym", self.task
        if self.task == "Cartpole":
            if self.backend == "isaacgym":
                hint = f" (looked for it on the Python path; {self.isaac_gym_path!r} is not added)" \
                    if self.isaac_gym_path else ""
                self.ctx.warn(f"Isaac Gym is not installed{hint}; running the built-in CartpoleIsaac task instead")
            if self.physics_engine != "physx":
                self.ctx.warn(f"physics_engine {self.physics_engine!r} is ignored by the built-in task")
            return "torch", "CartpoleIsaac"
        return "isaacgym", self.task


class IsaacGymStepNode(StepNode):
    """DNNE's Isaac Gym step node: a ``StepNode`` with DNNE's socket names (``sim_handle``, ``done``)."""

    dnne = DnneLayout(
        inputs=("sim_handle", "actions", "context", "trigger"),
        outputs=("observations", "rewards", "done", "info", "next_observations", "context"),
    )
