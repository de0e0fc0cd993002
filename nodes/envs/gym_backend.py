"""Gymnasium environments behind the batched contract: vectorized numpy envs, or already-batched torch envs as is."""
from __future__ import annotations

import difflib
import importlib
import inspect
import warnings
from collections.abc import Collection, Mapping
from typing import Any

import gymnasium
import numpy as np
import torch
from torch import Tensor

from .base import BatchedEnv, RunningEpisodes, StepResult
from .flatten import ObservationFlattener
from .gym_loop import GymEnvLoop
from .minatar_env import missing_minatar, register_minatar_envs
from .mujoco_warnings import route_mujoco_warnings
from .recorder import EpisodeRecorder
from .spaces import Box, Discrete

# Raised in the parent when an AsyncVectorEnv worker process has died: its pipe is closed.
_DEAD_WORKER_ERRORS = (EOFError, BrokenPipeError, ConnectionError)

# Ids this package provides (MinAtar's games, when the optional ``minatar`` is installed), so graphs name them plainly.
register_minatar_envs()


def module_of(task: str) -> str | None:
    """The module Gymnasium would import for a ``"module:EnvId"`` id, or ``None`` for a registered id."""
    module, colon, _ = task.partition(":")
    return module if colon else None


def refused_module(task: str, allowed: Collection[str]) -> str | None:
    """Why ``task`` may not be made: its ``module:`` part names a module the user did not allow; else ``None``.

    A graph file is data, so the module it names is imported only when the command line allows it
    (``dnne run --allow-env-module MODULE``).
    """
    module = module_of(task)
    if module is None or module in allowed:
        return None
    return (f"env id {task!r} would import the module {module!r}; a graph file may not import modules: allow it on "
            f"the command line with --allow-env-module {module}, or register the env in an installed package")


def env_kwargs_problems(task: str, env_kwargs: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """What is wrong with ``task`` and ``env_kwargs``, found without building the env: an id Gymnasium does not
    know, or keyword arguments its constructor (or ``gymnasium.make``) does not take. Call only for ids whose module
    is allowed (``refused_module``): finding the spec of a ``module:`` id imports the module.

    Returns:
        ``(code, param, message)`` for each problem.
    """
    missing = missing_minatar(task)
    if missing is not None:
        return [("missing_package", "task", missing)]
    module = module_of(task)
    try:
        if module is not None:
            importlib.import_module(module)
        spec = gymnasium.spec(task.partition(":")[2] if module else task)
    except (gymnasium.error.Error, ImportError) as error:
        return [("unknown_env_id", "task", f"unknown Gymnasium env id {task!r}: {error}")]
    if not env_kwargs:
        return []
    try:
        creator = spec.entry_point if callable(spec.entry_point) else gymnasium.envs.registration.load_env_creator(
            str(spec.entry_point))
        parameters = inspect.signature(creator).parameters
    except (ImportError, AttributeError, TypeError, ValueError):
        return []  # a creator that cannot be inspected is checked when it is built
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return []
    accepted = set(parameters) | set(inspect.signature(gymnasium.make).parameters) - {"id", "kwargs"}
    problems = []
    for key in env_kwargs:
        if key not in accepted:
            near = difflib.get_close_matches(key, sorted(accepted), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f" (it takes: {', '.join(sorted(accepted))})"
            problems.append(("bad_env_kwargs", "env_kwargs", f"env_kwargs key {key!r} is not an argument of {task!r}{hint}"))
    return problems


def to_space(space: gymnasium.Space, what: str, task: str) -> Box | Discrete:
    """Convert a Gymnasium space of one environment to ours.

    Args:
        space: a ``gymnasium.spaces.Box`` with one dimension or a ``gymnasium.spaces.Discrete`` starting at 0.
        what: "observation" or "action", for the error message.
        task: the env id, for the error message.

    Returns:
        The equivalent ``Box`` (bounds as float64 CPU tensors) or ``Discrete``.

    Raises:
        ValueError: the space has another type, shape or start.
    """
    if isinstance(space, gymnasium.spaces.Discrete) and int(space.start) == 0:
        return Discrete(int(space.n))
    if isinstance(space, gymnasium.spaces.Box) and len(space.shape) == 1:
        low = torch.as_tensor(space.low, dtype=torch.float64)
        high = torch.as_tensor(space.high, dtype=torch.float64)
        return Box(low, high)
    raise ValueError(
        f"Gymnasium env {task!r}: its {what} space {space} is not supported; batched envs need a flat Box or a "
        "Discrete starting at 0 (flatten the space with a Gymnasium wrapper in a registered env)"
    )


def _entry_point(task: str) -> Any:
    """The entry point Gymnasium registered for ``task`` (a ``module:EnvId``'s env id looked up as is), ``None``
    when it is not registered (yet: a module id's module registers its envs when ``make`` imports it)."""
    try:
        return gymnasium.spec(task.rpartition(":")[2]).entry_point
    except gymnasium.error.Error:
        return None


def same_step_vector_env(task: str, num_envs: int, vectorization: str,
                         env_kwargs: Mapping[str, Any]) -> gymnasium.vector.VectorEnv:
    """Gymnasium's vector env of ``task`` (``"sync"``: ``SyncVectorEnv``, ``"async"``: ``AsyncVectorEnv``) with
    same-step autoreset, the contract ``GymnasiumEnv`` and ``GymEnvLoop`` keep."""
    return gymnasium.make_vec(task, num_envs, vectorization_mode=vectorization,
                              vector_kwargs={"autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP},
                              **env_kwargs)


def _env_dt(env: gymnasium.Env) -> float:
    """Seconds per step: the env's ``dt`` (MuJoCo envs), else ``1 / render_fps``, else 0.0."""
    dt = getattr(env.unwrapped, "dt", None)
    if dt is not None:
        return float(dt)
    fps = (env.metadata or {}).get("render_fps")
    return 1.0 / float(fps) if fps else 0.0


def _is_torch_batched(env: gymnasium.Env) -> bool:
    """Whether ``env`` is already batched and speaks torch (Isaac Lab style); resets it to find out."""
    if getattr(env.unwrapped, "num_envs", 1) > 1:
        return True
    observations, _ = env.reset()
    if isinstance(observations, dict):
        observations = observations.get("policy")
    return isinstance(observations, Tensor)


class GymnasiumEnv(BatchedEnv):
    """Any registered Gymnasium id, vectorized with same-step autoreset: in this process by ``GymEnvLoop`` (by
    Gymnasium's ``SyncVectorEnv`` while recording), in subprocesses by Gymnasium's ``AsyncVectorEnv``.

    Envs that ``gymnasium.make`` returns already batched over torch tensors are wrapped without a second
    vectorization; ``GymnasiumEnv`` then delegates to ``TorchBatchedGymEnv``.

    Args:
        task: a registered env id, e.g. ``"CartPole-v1"`` or ``"HalfCheetah-v5"``.
        num_envs: number of environments.
        device: device of every returned tensor.
        vectorization: ``"sync"`` steps the envs in this process, ``"async"`` one subprocess per env.
        env_kwargs: keyword arguments for the env constructor.
        dtype: float dtype of observations and rewards.
        record_dir: write a video of each episode of env 0 here (renders env 0 alone with
            ``render_mode="rgb_array"``; needs ``sync`` vectorization).
        record_format: ``mp4`` or ``gif``.
        allowed_modules: modules a ``"module:EnvId"`` id may import (from the command line, never a file).
    """

    def __init__(
        self,
        task: str,
        num_envs: int,
        device: str | torch.device = "cpu",
        vectorization: str = "sync",
        env_kwargs: dict[str, Any] | None = None,
        dtype: torch.dtype = torch.float32,
        record_dir: str | None = None,
        record_format: str = "mp4",
        allowed_modules: Collection[str] = (),
    ) -> None:
        refusal = refused_module(task, allowed_modules) or missing_minatar(task)
        if refusal is not None:
            raise ValueError(refusal)
        if vectorization not in ("sync", "async"):
            raise ValueError(f"Gymnasium env {task!r}: vectorization must be 'sync' or 'async', got {vectorization!r}")
        env_kwargs = dict(env_kwargs or {})
        self._recorder: EpisodeRecorder | None = None
        if record_dir is not None:
            if vectorization != "sync":
                raise ValueError(f"Gymnasium env {task!r}: recording videos needs vectorization 'sync'")
            env_kwargs["render_mode"] = "rgb_array"
        self.task = task
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.dtype = dtype
        try:
            route_mujoco_warnings(_entry_point(task))
            probe = gymnasium.make(task, disable_env_checker=True, **env_kwargs)
        except gymnasium.error.UnregisteredEnv as exc:
            raise ValueError(f"unknown Gymnasium env id {task!r}: {exc}") from exc
        self._batched: TorchBatchedGymEnv | None = None
        if _is_torch_batched(probe):
            self._batched = TorchBatchedGymEnv(probe, task, num_envs, self.device, dtype)
            self.observation_space = self._batched.observation_space
            self.action_space = self._batched.action_space
            self.dt = self._batched.dt
            return
        self.dt = _env_dt(probe)
        probe.close()
        # in-process envs without a recorder: GymEnvLoop, SyncVectorEnv's numbers for 0.87-0.91x its time a step
        self._env: GymEnvLoop | gymnasium.vector.VectorEnv = GymEnvLoop(task, num_envs, env_kwargs) if (
            vectorization == "sync" and record_dir is None) else same_step_vector_env(task, num_envs, vectorization,
                                                                                      env_kwargs)
        self._flatten = ObservationFlattener(self._env.single_observation_space, task)
        self.observation_space = self._flatten.space
        self.reward_threshold = getattr(self._env.spec, "reward_threshold", None) if self._env.spec else None
        self.action_space = to_space(self._env.single_action_space, "action", task)
        self._action_dtype = getattr(self._env.single_action_space, "dtype", np.float32)
        self._episodes = RunningEpisodes(num_envs, self.device, dtype)
        if record_dir is not None:
            self._recorder = EpisodeRecorder(record_dir, 1 / self.dt if self.dt > 0 else 30.0, record_format)

    def reset(self, seed: int | None = None) -> Tensor:
        """Reset every environment; env ``i`` is seeded with ``seed + i`` as Gymnasium does."""
        if self._batched is not None:
            return self._batched.reset(seed)
        observations, _ = self._call(lambda: self._env.reset(seed=seed))
        self._episodes.reset()
        if self._recorder is not None:
            self._recorder.add(self._render_first())
        return self._tensor(self._flatten.batch(observations))

    def step(self, actions: Tensor) -> StepResult:
        """Step every environment; see ``BatchedEnv.step``.

        Raises:
            RuntimeError: an async worker process died.
        """
        if self._batched is not None:
            return self._batched.step(actions)
        array = self._action_array(actions)
        observations, rewards, terminated, truncated, infos = self._call(lambda: self._env.step(array))
        observations = self._tensor(self._flatten.batch(observations))
        final_observations = observations.clone()
        for i in np.flatnonzero(infos.get("_final_obs", ())):
            final_observations[i] = self._tensor(self._flatten.one(infos["final_obs"][i]))
        terminated = np.array(terminated, dtype=np.bool_)  # a copy: the tensors below share its memory
        # Gymnasium's TimeLimit can report both; the contract says a terminal state wins.
        truncated = np.asarray(truncated, dtype=np.bool_) & ~terminated
        done = terminated | truncated
        rewards = torch.as_tensor(rewards, dtype=self.dtype, device=self.device)
        episode_returns, episode_lengths = self._episodes.update(
            rewards, torch.from_numpy(done).to(self.device), any_done=bool(done.any()))
        terminated = torch.from_numpy(terminated).to(self.device)
        truncated = torch.from_numpy(truncated).to(self.device)
        if self._recorder is not None:
            if bool(terminated[0] | truncated[0]):
                self._recorder.episode_ended()
            self._recorder.add(self._render_first())
        return StepResult(
            observations=observations,
            rewards=rewards,
            terminated=terminated,
            truncated=truncated,
            final_observations=final_observations,
            episode_returns=episode_returns,
            episode_lengths=episode_lengths,
        )

    def _action_array(self, actions: Tensor) -> np.ndarray:
        """``check_actions``'s actions as the numpy array the envs take: continuous ones in the action space's dtype
        (bfloat16, which numpy lacks, read as float32, which holds it exactly)."""
        checked = self.check_actions(actions).cpu()
        if isinstance(self.action_space, Discrete):
            return checked.numpy()
        if checked.dtype == torch.bfloat16:
            checked = checked.float()
        return checked.numpy().astype(self._action_dtype)

    def close(self) -> None:
        """Close the envs; worker processes that cannot be shut down politely are terminated."""
        if self._batched is not None:
            self._batched.close()
            return
        if self._recorder is not None:
            self._recorder.close()
        try:
            self._env.close()
        except _DEAD_WORKER_ERRORS:
            self._env.close(terminate=True)

    def _render_first(self) -> np.ndarray | None:
        """A frame of env 0 alone (the others are never drawn)."""
        try:
            return self._env.envs[0].render()
        except Exception as exc:
            if "GL" in str(exc) or "gl" in type(exc).__name__.lower() or "display" in str(exc).lower():
                raise RuntimeError(
                    f"Gymnasium env {self.task!r} cannot open an OpenGL context to render ({exc}); without a "
                    "display, run with MUJOCO_GL=egl (GPU) or MUJOCO_GL=osmesa (CPU)") from exc
            raise

    def _tensor(self, array: np.ndarray) -> Tensor:
        """A new float tensor of ``array`` on the env device (never a view of a Gymnasium buffer)."""
        return torch.tensor(np.asarray(array), dtype=self.dtype, device=self.device)

    def _call(self, call: Any) -> Any:
        """Run a vector-env call, turning a dead worker's broken pipe into an error that names the task."""
        try:
            return call()
        except _DEAD_WORKER_ERRORS as exc:
            raise RuntimeError(
                f"Gymnasium env {self.task!r}: a worker process of the async vector env died "
                f"({type(exc).__name__}: {exc}); the run cannot continue with these envs"
            ) from exc


class TorchBatchedGymEnv(BatchedEnv):
    """A Gymnasium env that is already batched over torch tensors (Isaac Lab style), wrapped without re-vectorizing.

    The env's ``reset(seed=)`` returns ``(observations, info)`` and its ``step(actions)`` returns
    ``(observations, rewards, terminated, truncated, info)``, all ``[N, ...]`` tensors, with automatic reset inside
    ``step``. Dict observations use their ``"policy"`` entry. If ``info["final_obs"]`` is a ``[N, obs_dim]`` tensor it
    gives the pre-reset observations of ended envs; envs that do not report it (Isaac Lab does not) leave
    ``final_observations`` equal to the post-reset ``observations``, and a warning says so once, since bootstrapping
    truncated episodes from them is wrong.

    Args:
        env: the env ``gymnasium.make`` returned.
        task: its id, for messages.
        num_envs: the number of envs the caller expects; must equal the env's own.
        device: device of every returned tensor.
        dtype: float dtype of observations and rewards.
    """

    def __init__(self, env: gymnasium.Env, task: str, num_envs: int, device: torch.device, dtype: torch.dtype) -> None:
        own = getattr(env.unwrapped, "num_envs", None)
        if own is not None and own != num_envs:
            raise ValueError(
                f"Gymnasium env {task!r} is already batched with {own} envs but {num_envs} were asked for; "
                "set its number of envs through env_kwargs"
            )
        self._env = env
        self.task = task
        self.num_envs = num_envs
        self.device = device
        self.dtype = dtype
        unwrapped = env.unwrapped
        observation_space = getattr(unwrapped, "single_observation_space", env.observation_space)
        if isinstance(observation_space, gymnasium.spaces.Dict):
            observation_space = observation_space["policy"]
        self.observation_space = to_space(observation_space, "observation", task)
        self.action_space = to_space(getattr(unwrapped, "single_action_space", env.action_space), "action", task)
        self.dt = _env_dt(env)
        self._episodes = RunningEpisodes(num_envs, device, dtype)
        self._warned_final = False

    def reset(self, seed: int | None = None) -> Tensor:
        """Reset every environment through the env's own ``reset(seed=)``."""
        observations, _ = self._env.reset(seed=seed)
        self._episodes.reset()
        return self._observations(observations)

    def step(self, actions: Tensor) -> StepResult:
        """Step the batched env; see ``BatchedEnv.step``."""
        actions = self.check_actions(actions)
        observations, rewards, terminated, truncated, infos = self._env.step(actions)
        observations = self._observations(observations)
        terminated = torch.as_tensor(terminated).to(self.device, torch.bool).reshape(self.num_envs)
        truncated = torch.as_tensor(truncated).to(self.device, torch.bool).reshape(self.num_envs) & ~terminated
        done = terminated | truncated
        rewards = torch.as_tensor(rewards).to(self.device, self.dtype).reshape(self.num_envs).clone()
        final = infos.get("final_obs") if isinstance(infos, dict) else None
        if isinstance(final, Tensor):
            final_observations = torch.where(done[:, None], self._observations(final), observations)
        else:
            if bool(done.any()) and not self._warned_final:
                warnings.warn(
                    f"Gymnasium env {self.task!r} does not report final observations (info['final_obs']); "
                    "final_observations of ended episodes are the post-reset observations",
                    stacklevel=2,
                )
                self._warned_final = True
            final_observations = observations.clone()
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

    def close(self) -> None:
        """Close the wrapped env."""
        self._env.close()

    def _observations(self, observations: Tensor | dict[str, Tensor]) -> Tensor:
        """A new ``[N, obs_dim]`` tensor of the env's observations (the ``"policy"`` entry of a dict)."""
        if isinstance(observations, dict):
            observations = observations["policy"]
        return torch.as_tensor(observations).to(self.device, self.dtype).reshape(self.num_envs, -1).clone()
