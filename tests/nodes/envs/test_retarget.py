"""Retargeting like SB3: one gym graph runs other tasks with only ``--set env.task=...``."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch

from dnne.nodes.envs.flatten import ObservationFlattener
from dnne.nodes.envs.gym_backend import GymnasiumEnv

ROOT = Path(__file__).resolve().parents[3]
GYM = ROOT / "graphs" / "gym_cartpole_ppo.json"
DNNE = [sys.executable, "-m", "dnne.runtime.cli"]


@pytest.mark.parametrize(("task", "kind", "threshold"), [("Acrobot-v1", "discrete", "-100.0"),
                                                          ("InvertedPendulum-v5", "continuous", None),
                                                          ("FrozenLake-v1", "discrete", "0.7")])
def test_gym_graph_retargets(tmp_path: Path, task: str, kind: str, threshold: str) -> None:
    """The CartPole gym graph trains another task with only --set env.task: the agent's action space comes from the
    env, Discrete observations arrive one-hot, and the file's target return (CartPole's 475) is warned about where it
    is above the task's solved threshold (Acrobot -100, FrozenLake 0.7; InvertedPendulum's 950 is above it)."""
    done = subprocess.run([*DNNE, "run", str(GYM), "--set", f"env.task={task}", "--max-steps", "512",
                           "--run-dir", str(tmp_path / "r"), "-q"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["error"] is None and summary["env_steps"] >= 512
    warned = f"run.target_return is 475 but {task} counts as solved at {threshold}" in done.stderr
    assert warned == (threshold is not None) and ("target_return" in done.stderr) == warned
    (checkpoint,) = sorted((tmp_path / "r" / "checkpoints").glob("ckpt-*.pt"))[-1:]
    model = torch.load(checkpoint, weights_only=True)["nodes"]["agent"]["model"]
    assert ("log_std" in model) == (kind == "continuous")


def test_the_files_own_task_has_its_threshold(tmp_path: Path) -> None:
    """CartPole-v1's own threshold is the file's target, so the shipped file runs without the warning."""
    env = GymnasiumEnv("CartPole-v1", 1)
    assert env.reward_threshold == json.loads(GYM.read_text())["run"]["target_return"]
    env.close()


class TestObservationFlattener:
    def test_discrete_observations_are_one_hot(self) -> None:
        """FrozenLake's Discrete(16) state arrives as a one-hot row per env, the space a [0, 1]^16 box."""
        env = GymnasiumEnv("FrozenLake-v1", 2)
        assert env.observation_space.dim == 16 and float(env.observation_space.high.max()) == 1.0
        observations = env.reset(seed=0)
        assert torch.equal(observations, torch.eye(16)[[0, 0]])
        env.close()

    def test_dict_is_flattened_by_sorted_key(self) -> None:
        """A Dict observation is each key's flat part, keys in sorted order, Discrete parts one-hot."""
        space = gymnasium.spaces.Dict({"b": gymnasium.spaces.Discrete(3),
                                       "a": gymnasium.spaces.Box(-1.0, 1.0, (2,), np.float32)})
        flattener = ObservationFlattener(space, "test")
        batch = {"a": np.array([[0.5, -0.5], [0.1, 0.2]], np.float32), "b": np.array([2, 0])}
        expected = np.array([[0.5, -0.5, 0, 0, 1], [0.1, 0.2, 1, 0, 0]], np.float32)
        assert np.allclose(flattener.batch(batch), expected) and flattener.space.dim == 5

    def test_unflattenable_key_is_named(self) -> None:
        """A Dict key with no vector form is an error naming the key."""
        space = gymnasium.spaces.Dict({"pos": gymnasium.spaces.Box(-1.0, 1.0, (2,)),
                                       "note": gymnasium.spaces.Text(8)})
        with pytest.raises(ValueError, match="observation key 'note'"):
            ObservationFlattener(space, "test")

    def test_flat_box_passes_through(self) -> None:
        """A 1-d Box is not copied or converted."""
        flattener = ObservationFlattener(gymnasium.spaces.Box(-1.0, 1.0, (3,)), "test")
        batch = np.zeros((2, 3), np.float32)
        assert flattener.batch(batch) is batch

    def test_image_box_rows_equal_gymnasiums_flatten(self) -> None:
        """A [C, H, W] Box batch becomes one row per env, each equal to Gymnasium's own flatten of that image."""
        space = gymnasium.spaces.Box(0.0, 1.0, (2, 3, 4), np.float32)
        flattener = ObservationFlattener(space, "test")
        batch = np.random.default_rng(0).random((5, 2, 3, 4)).astype(np.float32)
        expected = np.stack([gymnasium.spaces.utils.flatten(space, image) for image in batch])
        np.testing.assert_array_equal(flattener.batch(batch), expected)
        np.testing.assert_array_equal(flattener.one(batch[1]), expected[1])
        assert flattener.space.dim == 24
