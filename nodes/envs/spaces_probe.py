"""An env's spaces before running: one env of the task built on the CPU, read, and closed, so validation can
compare an agent with its env (``EnvNode.static_declarations``)."""
from __future__ import annotations

import functools
import json
from collections.abc import Collection, Mapping
from typing import Any

PROBED_BACKENDS = ("torch", "gymnasium")


def probe_spaces(backend: str, task: str, env_kwargs: Mapping[str, Any], allowed_modules: Collection[str]) -> dict[
        str, Any]:
    """``{"observation_space": ..., "action_space": ...}`` of one env of ``task``; empty for the backends not probed
    (Isaac Gym), an id whose module the command line did not allow, or an env that fails to build (its setup says
    why). A ``module:EnvId`` id is probed only when its module is allowed: probing imports it."""
    if backend not in PROBED_BACKENDS:
        return {}
    try:
        kwargs = json.dumps(dict(env_kwargs), sort_keys=True)
    except (TypeError, ValueError):
        return {}
    return dict(_probe(backend, task, kwargs, tuple(sorted(allowed_modules))))


@functools.lru_cache(maxsize=64)
def _probe(backend: str, task: str, kwargs: str, allowed_modules: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    from .registry import TORCH_TASKS, make_env

    options: dict[str, Any] = json.loads(kwargs)
    if backend == "torch" and task not in TORCH_TASKS:
        return ()
    if backend == "gymnasium":
        try:
            from .gym_backend import refused_module
        except ImportError:
            return ()
        if refused_module(task, allowed_modules) is not None:
            return ()
        options = {"env_kwargs": options, "allowed_modules": allowed_modules}
    try:
        env = make_env(backend, task, 1, "cpu", **options)
    except Exception:  # any failure to build is setup's to report, with its own message
        return ()
    try:
        return (("observation_space", env.observation_space), ("action_space", env.action_space))
    finally:
        try:
            env.close()
        except Exception:
            pass  # the spaces are read; a failing close changes nothing here
