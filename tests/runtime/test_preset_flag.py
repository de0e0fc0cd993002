"""``dnne run --preset NAME``: the graph files of graphs/presets by name."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dnne.runtime.cli.presets import preset_path, presets

ROOT = Path(__file__).resolve().parents[2]
DNNE = [sys.executable, "-m", "dnne.runtime.cli"]


def dnne(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run the CLI."""
    return subprocess.run([*DNNE, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


class TestLookup:
    def test_every_preset_file_is_named(self) -> None:
        """Each graphs/presets/*.json is a preset under its file's stem, in any case and with or without .json."""
        files = sorted(p.stem for p in (ROOT / "graphs" / "presets").glob("*.json"))
        assert sorted(presets()) == files and "acrobot" in files
        assert preset_path("Acrobot") == preset_path("acrobot.json") == ROOT / "graphs" / "presets" / "acrobot.json"

    def test_unknown_name_suggests_and_lists(self) -> None:
        """A misspelt name gets the closest presets and the whole list."""
        with pytest.raises(ValueError, match=r"no preset 'acrobt': did you mean acrobot\? presets: .*pendulum"):
            preset_path("acrobt")


class TestCommand:
    def test_unknown_preset_is_bad_input(self, tmp_path: Path) -> None:
        """An unknown preset exits 2 with the list, no traceback, from any directory."""
        done = dnne("run", "--preset", "lunarlandr", "--run-dir", str(tmp_path / "r"), cwd=tmp_path)
        assert done.returncode == 2 and "did you mean lunarlander" in done.stderr and "cartpole" in done.stderr
        assert "Traceback" not in done.stderr and not (tmp_path / "r").exists()

    def test_file_and_preset_together_is_bad_input(self, tmp_path: Path) -> None:
        done = dnne("run", str(ROOT / "graphs" / "cartpole_ppo.json"), "--preset", "acrobot", cwd=tmp_path)
        assert done.returncode == 2 and "not both" in done.stderr

    def test_a_preset_runs_as_its_file(self, tmp_path: Path) -> None:
        """--preset acrobot runs graphs/presets/acrobot.json: the run directory holds that graph and the run is
        named after it."""
        run_dir = tmp_path / "run"
        done = dnne("run", "--preset", "acrobot", "--max-steps", "512", "--run-dir", str(run_dir), "-q",
                    cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        saved = json.loads((run_dir / "graph.json").read_text())
        shipped = json.loads((ROOT / "graphs" / "presets" / "acrobot.json").read_text())
        assert saved["nodes"]["env"]["params"]["task"] == shipped["nodes"]["env"]["params"]["task"] == "Acrobot-v1"
        assert json.loads((run_dir / "summary.json").read_text())["env_steps"] >= 512
