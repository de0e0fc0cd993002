"""GridReach, the built-in pixel task: its image, moves, rewards and episode ends; a random policy's score (the bar a
trained CNN agent must clear); the spec's 84x84 example graph runs; the CNN graph learns (slow)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dnne.nodes.envs.grid_reach import AGENT_PIXEL, GOAL_PIXEL, GridReach
from dnne.runtime.cli import main

GRAPHS = Path(__file__).resolve().parents[3] / "graphs"
CNN_GRAPH = GRAPHS / "grid_reach_cnn.json"
SPEC_GRAPH = GRAPHS / "spec_image_discrete.json"


def placed(env: GridReach, agent: tuple[int, int], goal: tuple[int, int]) -> None:
    env.reset(seed=0)
    env.set_state(torch.tensor([[*agent, *goal]], dtype=torch.float32).expand(env.num_envs, 4))


def test_image_shows_agent_and_goal() -> None:
    env = GridReach(1, size=4)
    placed(env, (1, 2), (3, 0))
    image = env.current_observations().reshape(4, 4)
    expected = torch.zeros(4, 4)
    expected[1, 2], expected[3, 0] = AGENT_PIXEL, GOAL_PIXEL
    assert torch.equal(image, expected)


def test_moves_rewards_and_ends() -> None:
    env = GridReach(4, size=4)
    placed(env, (1, 1), (1, 2))
    result = env.step(torch.tensor([3, 0, 2, 1]))  # right reaches the goal; the others move without ending
    assert result.rewards.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert result.terminated.tolist() == [True, False, False, False]
    after = env.get_state()
    assert after[1:, :2].tolist() == [[0.0, 1.0], [1.0, 0.0], [2.0, 1.0]]
    result = env.step(torch.tensor([0, 0, 2, 1]))  # env 1 and env 2 walk off the grid: ended, no reward
    assert result.terminated[1:].tolist() == [True, True, False]
    assert result.rewards[1:].tolist() == [0.0, 0.0, 0.0]


def test_episodes_truncate_and_reset_to_distinct_cells() -> None:
    env = GridReach(256, size=3, max_episode_steps=2)
    env.reset(seed=0)
    state = env.get_state()
    assert not ((state[:, 0] == state[:, 2]) & (state[:, 1] == state[:, 3])).any()
    assert set(state.flatten().tolist()) <= {0.0, 1.0, 2.0}
    env.set_state(torch.tensor([[0.0, 0.0, 2.0, 2.0]]).expand(256, 4))
    env.step(torch.full((256,), 1))
    result = env.step(torch.full((256,), 0))  # down then up: back where it started, at the step limit
    assert result.truncated.all() and not result.terminated.any()


def test_random_policy_stays_far_below_the_graphs_target() -> None:
    """The CNN graph's target (0.9) is far above what acting at random scores on the same task."""
    document = json.loads(CNN_GRAPH.read_text())
    options = document["nodes"]["env"]["params"]["env_kwargs"]
    env = GridReach(512, **options)
    env.reset(seed=0)
    generator = torch.Generator().manual_seed(0)
    returns = []
    for _ in range(200):
        returns += env.step(torch.randint(0, 4, (512,), generator=generator)).episode_returns.tolist()
    random_score = sum(returns) / len(returns)
    assert 0.05 < random_score < 0.2
    assert document["run"]["target_return"] >= 4 * random_score


def test_spec_image_example_runs(tmp_path: Path) -> None:
    """The spec's 84x84 discrete example validates and trains (one small update here)."""
    assert main(["validate", str(SPEC_GRAPH)]) == 0
    code = main(["run", str(SPEC_GRAPH), "--run-dir", str(tmp_path / "run"), "--set", "env.num_envs=2",
                 "--set", "trainer.horizon_length=8", "--set", "trainer.epochs=1", "--set", "run.max_iterations=1"])
    assert code == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stop_reason"] == "max_iterations"


@pytest.mark.slow
def test_cnn_graph_learns(tmp_path: Path) -> None:
    """grid_reach_cnn.json reaches its target (mean return 0.9 over the last 20 episodes) within its budget."""
    code = main(["run", str(CNN_GRAPH), "--run-dir", str(tmp_path / "run"), "--timeout", "30m"])
    assert code == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stop_reason"] == "target_return", summary
