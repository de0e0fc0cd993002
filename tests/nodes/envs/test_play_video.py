"""`dnne play --video` records env 0's episodes: MP4 (GIF on request) of a Gymnasium env or a built-in task."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from dnne.runtime.cli import main

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short Gymnasium CartPole training run."""
    run_dir = tmp_path_factory.mktemp("gym") / "run"
    assert main(["run", str(ROOT / "graphs" / "gym_cartpole_ppo.json"), "--max-steps", "2048", "--set",
                 "run.target_return=null", "--run-dir", str(run_dir), "-q"]) == 0
    return run_dir


class TestPlayVideo:
    def test_gif_per_episode(self, trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Playing 3 episodes with --video --video-format gif writes at least one multi-frame GIF of env 0."""
        videos = tmp_path / "videos"
        code = main(["play", str(ROOT / "graphs" / "gym_cartpole_ppo.json"), "--checkpoint", str(trained),
                     "--episodes", "3", "--video", str(videos), "--video-format", "gif"])
        assert code == 0
        report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        gifs = sorted(videos.glob("episode-*.gif"))
        assert gifs
        with Image.open(gifs[0]) as gif:
            assert gif.n_frames >= 8 and gif.size == (600, 400)
        assert report["episodes"] >= 3

    def test_builtin_cartpole_mp4(self, tmp_path: Path) -> None:
        """The built-in torch Cartpole is drawn: one MP4 per episode of env 0, as many frames as steps plus one, and
        a stop in the middle of an episode writes that partial episode."""
        import imageio.v3 as iio

        run_dir = tmp_path / "run"
        assert main(["run", str(ROOT / "graphs" / "cartpole_ppo.json"), "--max-steps", "512", "--set",
                     "run.target_return=null", "--run-dir", str(run_dir), "-q"]) == 0
        videos = tmp_path / "v"
        code = main(["play", str(ROOT / "graphs" / "cartpole_ppo.json"), "--checkpoint", str(run_dir),
                     "--episodes", "24", "--video", str(videos), "--set", "env.num_envs=2"])
        assert code == 0
        complete = [path for path in sorted(videos.glob("episode-*.mp4")) if "partial" not in path.name]
        assert complete
        frames = iio.imread(complete[0])
        assert frames.ndim == 4 and frames.shape[0] >= 9 and frames.shape[3] == 3
        assert frames.std() > 0  # a drawn picture, not a blank frame
        partial = tmp_path / "p"
        code = main(["play", str(ROOT / "graphs" / "cartpole_ppo.json"), "--checkpoint", str(run_dir),
                     "--episodes", "100", "--max-steps", "10", "--video", str(partial), "--set",
                     "env.num_envs=2"])
        assert code == 0
        (cut,) = partial.glob("*.mp4")
        assert cut.name == "episode-000-partial.mp4" and iio.imread(cut).shape[0] >= 5


def test_gl_failure_names_mujoco_gl(tmp_path: Path) -> None:
    """A render that cannot open a GL context says to set MUJOCO_GL=egl."""
    from dnne.nodes.envs.gym_backend import GymnasiumEnv

    env = GymnasiumEnv("CartPole-v1", 1, record_dir=str(tmp_path))

    def no_gl() -> None:
        raise RuntimeError("Failed to initialize OpenGL")

    env._env.envs[0].render = no_gl
    with pytest.raises(RuntimeError, match="MUJOCO_GL=egl"):
        env.reset(seed=0)
    env._recorder = None
    env.close()
