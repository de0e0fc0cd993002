"""``dnne export``: the deployed policy acts in the env's units and scores what ``dnne play`` scores."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[3]
GYM = ROOT / "graphs" / "gym_cartpole_ppo.json"
DNNE = [sys.executable, "-m", "dnne.runtime.cli"]
PENDULUM = ["--set", "env.task=Pendulum-v1", "--set", "agent.action_space=continuous", "--set", "env.num_envs=1",
            "--set", "env.seed=7"]

STANDALONE = """
import json, sys
import gymnasium as gym
import torch
policy = torch.export.load(sys.argv[1]).module()
env = gym.make("Pendulum-v1")
obs, _ = env.reset(seed=7)
total, done, actions = 0.0, False, []
while not done:
    action = policy(torch.as_tensor(obs, dtype=torch.float32)[None])[0].numpy()
    actions.append(float(abs(action).max()))
    obs, reward, terminated, truncated, _ = env.step(action)
    total += float(reward)
    done = terminated or truncated
print(json.dumps({"return": total, "max_abs_action": max(actions), "dnne_imported": "dnne" in sys.modules}))
"""


def dnne(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI."""
    done = subprocess.run([*DNNE, *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short PPO run on Gymnasium's Pendulum-v1 (actions in [-2, 2]) through the retargeted gym graph."""
    run_dir = tmp_path_factory.mktemp("pendulum") / "run"
    dnne("run", str(GYM), *PENDULUM, "--set", "run.target_return=null", "--set", "trainer.minibatch_size=64",
         "--max-steps", "256", "--run-dir", str(run_dir), "-q")
    return run_dir


class TestExport:
    @pytest.mark.slow
    def test_exported_policy_scores_as_play(self, pendulum_run: Path, tmp_path: Path) -> None:
        """Loaded in a process that never imports dnne, the exported policy's episode return equals dnne play's on
        the same seed: the observation normaliser and the ActionNode's rescale are inside it."""
        out = tmp_path / "policy.pt2"
        printed = dnne("export", str(pendulum_run), "-o", str(out)).stdout.split()
        assert printed == [str(out), str(out.with_suffix(".json")), str(out.with_suffix(".onnx"))]
        metadata = json.loads(out.with_suffix(".json").read_text())
        assert metadata["applies"] == ["action"]
        assert metadata["env_action_space"] == {"type": "box", "shape": [1], "low": [-2.0], "high": [2.0]}
        played = dnne("play", str(GYM), *PENDULUM, "--checkpoint", str(pendulum_run), "--episodes", "1")
        expected = json.loads(played.stdout.strip().splitlines()[-1])["mean_return"]
        script = tmp_path / "standalone.py"
        script.write_text(STANDALONE)
        done = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=300,
                              cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        standalone = json.loads(done.stdout.strip().splitlines()[-1])
        assert not standalone["dnne_imported"]
        assert standalone["return"] == pytest.approx(expected, rel=1e-4)

    def test_onnx_carries_the_spaces(self, pendulum_run: Path, tmp_path: Path) -> None:
        """The ONNX file (dynamo exporter) has a dynamic batch and the spaces as a model property."""
        import onnx

        out = tmp_path / "policy.pt2"
        dnne("export", str(pendulum_run), "-o", str(out))
        model = onnx.load(str(out.with_suffix(".onnx")))
        props = {prop.key: prop.value for prop in model.metadata_props}
        assert json.loads(props["dnne"])["env_action_space"]["high"] == [2.0]
        batch = model.graph.input[0].type.tensor_type.shape.dim[0]
        assert batch.dim_param and not batch.dim_value
        from onnx.reference import ReferenceEvaluator

        obs = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
        expected = torch.export.load(str(out)).module()(obs)
        (actions,) = ReferenceEvaluator(model).run(None, {"observations": obs.numpy()})
        assert actions.shape == (5, 1) and torch.allclose(torch.as_tensor(actions), expected, atol=1e-5)
