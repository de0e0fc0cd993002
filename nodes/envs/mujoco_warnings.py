"""MuJoCo's warnings once each, through the ``dnne`` logger, instead of on stderr for every model compiled.

MuJoCo 4 warns while compiling a model that uses a deprecated attribute, and Gymnasium's own locomotion models use
one (``settotalmass``): a HalfCheetah graph of 16 envs printed the same warning 17 times as it started.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

_seen: set[str] = set()
_lock = threading.Lock()


def log_once(message: str) -> None:
    """Log MuJoCo's ``message`` as a warning the first time this process sees it; repeats are dropped."""
    with _lock:
        if message in _seen:
            return
        _seen.add(message)
    logging.getLogger("dnne").warning("MuJoCo: %s", message.strip())


def route_mujoco_warnings(entry_point: Any) -> None:
    """Send MuJoCo's warnings to ``log_once`` when ``entry_point`` (a Gymnasium spec's) names a MuJoCo env; other
    envs leave MuJoCo alone (and unimported). Process-wide, as MuJoCo's warning hook is."""
    if not (isinstance(entry_point, str) and "mujoco" in entry_point):
        return
    import mujoco

    mujoco.set_mju_user_warning(log_once)
