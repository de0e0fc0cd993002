"""The example node package under examples/ installs, is discovered through its entry point, and runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "examples" / "dnne-reward-scale"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Install the example package into a private folder and return an environment that sees it."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(PACKAGE)], check=True, capture_output=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")]))
    return env


class TestExamplePackage:
    def test_entry_point_discovered(self, installed: dict[str, str]) -> None:
        """`dnne nodes` lists the plugin's node, with its source named."""
        out = subprocess.run([sys.executable, "-m", "dnne.runtime.cli", "nodes", "RewardScaleNode", "--json"],
                             env=installed, capture_output=True, text=True, check=True)
        (info,) = json.loads(out.stdout)
        assert info["type"] == "RewardScaleNode" and "reward_scale" in info["source"]

    @pytest.mark.nodes
    def test_plugin_node_runs_in_a_graph(self, installed: dict[str, str], tmp_path: Path) -> None:
        """A Cartpole graph with the plugin node between step and trainer trains and exits 0."""
        graph = json.loads((ROOT / "graphs" / "cartpole_ppo.json").read_text())
        graph["nodes"]["scale"] = {"type": "RewardScaleNode", "params": {"scale": 0.5}}
        graph["links"] = [link for link in graph["links"] if link != ["step.rewards", "trainer.rewards"]]
        graph["links"] += [["step.rewards", "scale.rewards"], ["scale.scaled", "trainer.rewards"]]
        graph["run"].update(max_steps=2048, target_return=None)
        path = tmp_path / "g.json"
        path.write_text(json.dumps(graph))
        done = subprocess.run([sys.executable, "-m", "dnne.runtime.cli", "run", str(path), "--run-dir",
                               str(tmp_path / "run"), "-q"], env=installed, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert json.loads((tmp_path / "run" / "summary.json").read_text())["env_steps"] >= 2048

    def test_package_own_tests_pass(self, installed: dict[str, str]) -> None:
        """The package's own test, using dnne.runtime.testing, passes."""
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               str(PACKAGE / "test_reward_scale.py")], env=installed, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
