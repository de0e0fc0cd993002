"""MuJoCo's warnings are logged once each through the ``dnne`` logger, not printed for every env made."""
from __future__ import annotations

import logging

import pytest

from dnne.nodes.envs.mujoco_warnings import log_once

pytest.importorskip("mujoco")


def test_a_warning_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="dnne"):
        for _ in range(3):
            log_once("a test warning seen three times\n")
        log_once("another one")
    assert [r.getMessage() for r in caplog.records] == ["MuJoCo: a test warning seen three times",
                                                        "MuJoCo: another one"]


def test_halfcheetah_envs_print_no_mujoco_warnings(capfd: pytest.CaptureFixture[str],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Gymnasium's HalfCheetah model uses an attribute MuJoCo 4 deprecates: making 4 envs prints nothing of it and
    logs it at most once (once per process: another test may have made one first)."""
    from dnne.nodes.envs.gym_backend import GymnasiumEnv

    with caplog.at_level(logging.WARNING, logger="dnne"):
        GymnasiumEnv("HalfCheetah-v5", 4).close()
    captured = capfd.readouterr()
    assert "WARNING" not in captured.out + captured.err
    assert sum("MuJoCo:" in r.getMessage() for r in caplog.records) <= 1
