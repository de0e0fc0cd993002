"""`dnne play --video` records episode GIFs of a Gymnasium env; the built-in tasks warn that they cannot render."""
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
        """Playing 3 episodes with --video writes at least one multi-frame GIF of env 0, as long as its episode."""
        videos = tmp_path / "videos"
        code = main(["play", str(ROOT / "graphs" / "gym_cartpole_ppo.json"), "--checkpoint", str(trained),
                     "--episodes", "3", "--video", str(videos)])
        assert code == 0
        report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        gifs = sorted(videos.glob("episode-*.gif"))
        assert gifs
        with Image.open(gifs[0]) as gif:
            assert gif.n_frames >= 8 and gif.size == (600, 400)
        assert report["episodes"] >= 3

    def test_builtin_env_warns(self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        """A built-in torch task cannot render: --video warns, naming the env node, and writes nothing."""
        run_dir = tmp_path / "run"
        assert main(["run", str(ROOT / "graphs" / "cartpole_ppo.json"), "--max-steps", "512", "--set",
                     "run.target_return=null", "--run-dir", str(run_dir), "-q"]) == 0
        code = main(["play", str(ROOT / "graphs" / "cartpole_ppo.json"), "--checkpoint", str(run_dir),
                     "--episodes", "1", "--video", str(tmp_path / "v")])
        assert code == 0
        assert any("cannot render" in r.message and "env (EnvNode)" in r.message for r in caplog.records)
        assert not list((tmp_path / "v").glob("*.gif"))
