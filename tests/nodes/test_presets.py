"""The preset graph files: one per task, each aimed at its task with a target the task can reach."""
from __future__ import annotations

import json
from pathlib import Path

import gymnasium
import pytest

PRESETS = Path(__file__).resolve().parents[2] / "graphs" / "presets"
EXPECTED = {"cartpole": "CartPole-v1", "acrobot": "Acrobot-v1", "mountaincar": "MountainCar-v0",
            "lunarlander": "LunarLander-v3", "pendulum": "Pendulum-v1", "invertedpendulum": "InvertedPendulum-v5",
            "halfcheetah": "HalfCheetah-v5", "hopper": "Hopper-v5", "walker2d": "Walker2d-v5", "ant": "Ant-v5"}


@pytest.mark.parametrize(("name", "task"), sorted(EXPECTED.items()))
def test_preset_targets_its_task(name: str, task: str) -> None:
    """Each preset runs its Gymnasium task and its target return is not above the task's solved threshold (so the
    retargeting warning never fires on a preset); where the threshold is Gymnasium's, the target equals it."""
    document = json.loads((PRESETS / f"{name}.json").read_text())
    env = document["nodes"]["env"]["params"]
    assert env["backend"] == "gymnasium" and env["task"] == task
    target = document["run"]["target_return"]
    threshold = gymnasium.spec(task).reward_threshold
    if threshold is not None:
        assert target <= threshold
        assert target == threshold or task in ("HalfCheetah-v5", "Hopper-v5", "Ant-v5")
