"""MinAtar through our Gymnasium ids: frames against MinAtar's own ``state()``, actions, episode ends, seeding, the
Breakout graph (validates, runs two updates), and the message without the optional ``minatar`` package."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

gymnasium = pytest.importorskip("gymnasium")

from dnne.nodes.envs.gym_backend import GymnasiumEnv
from dnne.nodes.envs.minatar_env import GAMES, MinAtarEnv, minatar_available
from dnne.nodes.envs.spaces import Discrete
from dnne.runtime.cli import main

# Every test but the last needs the optional package; the last simulates its absence.
needs_minatar = pytest.mark.skipif(not minatar_available(), reason="the optional package minatar is not installed")

GRAPH = Path(__file__).resolve().parents[3] / "graphs" / "minatar_breakout_ppo.json"
CHANNELS = {"Asterix": 4, "Breakout": 4, "Freeway": 7, "Seaquest": 10, "SpaceInvaders": 6}
MINIMAL_ACTIONS = {"Asterix": 5, "Breakout": 3, "Freeway": 3, "Seaquest": 6, "SpaceInvaders": 4}


@needs_minatar
@pytest.mark.filterwarnings("ignore:.*is out of date:DeprecationWarning")  # Gymnasium's word on -v0 beside -v1
@pytest.mark.parametrize("name", sorted(GAMES))
def test_ids_spaces_and_frames_match_minatar(name: str) -> None:
    """``-v1`` has the game's minimal actions, ``-v0`` all six; every frame is MinAtar's own ``state()`` (read from
    the env's game) moved channels first, as float32 zeros and ones."""
    assert gymnasium.make(f"MinAtar/{name}-v0").action_space.n == 6
    env = gymnasium.make(f"MinAtar/{name}-v1")
    assert env.spec.max_episode_steps is None
    assert env.action_space.n == MINIMAL_ACTIONS[name]
    assert env.observation_space.shape == (CHANNELS[name], 10, 10)
    game = env.unwrapped.game
    observation, _ = env.reset(seed=3)
    frames = [(observation, game.state())]
    for action in np.random.default_rng(0).integers(0, env.action_space.n, 30):
        observation, _, terminated, _, _ = env.step(int(action))
        frames.append((observation, game.state()))
        if terminated:
            break
    for observation, state in frames:
        assert observation.dtype == np.float32 and observation.shape == (CHANNELS[name], 10, 10)
        np.testing.assert_array_equal(observation, np.moveaxis(state, -1, 0).astype(np.float32))


@needs_minatar
def test_steps_and_termination_follow_the_game() -> None:
    """Rewards and ends are MinAtar's: a second game with the same seed and the same (mapped) actions gives the same
    rewards, frames and end, and the episode ends when the game says terminal."""
    from minatar import Environment

    env = MinAtarEnv("breakout", sticky_action_prob=0.1)
    reference = Environment("breakout", sticky_action_prob=0.1)
    env.reset(seed=11)
    reference.seed(11)
    reference.reset()
    actions = np.random.default_rng(1).integers(0, 3, 500)
    for step, action in enumerate(actions):
        observation, reward, terminated, truncated, _ = env.step(int(action))
        expected_reward, expected_terminal = reference.act(reference.minimal_action_set()[action])
        assert (reward, terminated, truncated) == (float(expected_reward), bool(expected_terminal), False)
        np.testing.assert_array_equal(observation, np.moveaxis(reference.state(), -1, 0))
        if terminated:
            break
    assert terminated, "a random Breakout game ends within 500 frames"
    assert step > 0


@needs_minatar
def test_seeded_resets_repeat_and_seeds_differ() -> None:
    """The same seed replays the same game (also after play with another seed); another seed plays another."""
    def play(env: MinAtarEnv, seed: int) -> list[tuple[float, bool, bytes]]:
        env.reset(seed=seed)
        trace = []
        for action in [2, 1, 0, 2, 2, 1] * 40:
            observation, reward, terminated, _, _ = env.step(action)
            trace.append((reward, terminated, observation.tobytes()))
            if terminated:
                env.reset()
        return trace

    env = MinAtarEnv("asterix")
    first = play(env, 5)
    assert play(MinAtarEnv("asterix"), 5) == first
    play(env, 6)
    assert play(env, 5) == first
    assert play(env, 6) != first


@needs_minatar
def test_batched_backend_reads_images_channels_first() -> None:
    """Through the Gymnasium backend each row is one env's [C, 10, 10] frame flattened, episodes are counted, and
    a terminated env restarts with its final frame kept."""
    env = GymnasiumEnv("MinAtar/Breakout-v1", 3)
    observations = env.reset(seed=0)
    assert env.action_space == Discrete(3) and observations.shape == (3, 400)
    paddle_row = observations.reshape(3, 4, 10, 10)[:, 0, 9]
    assert torch.equal(paddle_row.sum(dim=1), torch.ones(3))  # the paddle: one cell of the bottom row
    assert torch.equal(observations.reshape(3, 4, 10, 10)[:, 3, 1:4].sum(dim=(1, 2)), torch.full((3,), 30.0))
    ended = 0
    for _ in range(300):
        result = env.step(torch.zeros(3, dtype=torch.long))
        if bool(result.terminated.any()):
            ended += int(result.terminated.sum())
            done = result.terminated
            assert torch.equal(result.observations[done].reshape(-1, 4, 10, 10)[:, 3, 1:4].sum(dim=(1, 2)),
                               torch.full((int(done.sum()),), 30.0))  # a fresh wall of bricks
            assert result.episode_returns.shape == (int(done.sum()),)
    assert ended >= 3 and not bool(result.truncated.any())
    env.close()


@needs_minatar
def test_rgb_frames_show_the_game() -> None:
    """``render_mode="rgb_array"`` draws a 160x160 frame, black exactly where MinAtar's state has no channel set."""
    env = MinAtarEnv("breakout", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (160, 160, 3) and frame.dtype == np.uint8
    lit = frame[::16, ::16].any(axis=2)
    np.testing.assert_array_equal(lit, env.game.state().any(axis=2))


@needs_minatar
def test_graph_validates_and_runs_two_updates(tmp_path: Path) -> None:
    """The shipped Breakout graph validates and trains two (small) updates."""
    assert main(["validate", str(GRAPH)]) == 0
    code = main(["run", str(GRAPH), "--run-dir", str(tmp_path / "run"), "--set", "env.num_envs=4",
                 "--set", "trainer.horizon_length=16", "--set", "trainer.minibatch_size=32",
                 "--set", "run.max_iterations=2"])
    assert code == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stop_reason"] == "max_iterations" and summary["iterations"] == 2


def test_validate_without_minatar_names_the_extra(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """With ``minatar`` not importable (hidden here; CI does not install it), validating the graph fails (exit 2) naming the id and the extra."""
    monkeypatch.setitem(sys.modules, "minatar", None)
    assert main(["validate", str(GRAPH)]) == 2
    printed = capsys.readouterr()
    message = printed.out + printed.err
    assert "missing_package" in message and "MinAtar/Breakout-v1" in message
    assert 'dnne-runtime[minatar]' in message
    assert "Traceback" not in message
    with pytest.raises(ValueError, match=r"dnne-runtime\[minatar\]"):
        GymnasiumEnv("MinAtar/Breakout-v1", 1)
