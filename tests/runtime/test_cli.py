"""The dnne command as users meet it: exit codes, errors without tracebacks, signals, resume, tools."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
CARTPOLE = ROOT / "graphs" / "cartpole_ppo.json"
DNNE = [sys.executable, "-m", "dnne.runtime.cli"]


def dnne(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a subprocess."""
    return subprocess.run([*DNNE, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def summary(run_dir: Path) -> dict:
    """The run's summary.json."""
    return json.loads((run_dir / "summary.json").read_text())


class TestExitCodes:
    @pytest.mark.nodes
    def test_bad_file_exits_2_without_traceback(self, tmp_path: Path) -> None:
        """A graph with an unknown node type and a bad param exits 2, naming both, no traceback."""
        graph = json.loads(CARTPOLE.read_text())
        graph["nodes"]["agent"]["type"] = "NoSuchNode"
        graph["nodes"]["trainer"]["params"]["gamma"] = 1.5
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(graph))
        done = dnne("run", str(path), "--run-dir", str(tmp_path / "r"))
        assert done.returncode == 2
        assert "unknown_node_type" in done.stderr and "'agent'" in done.stderr
        assert "value_out_of_bounds" in done.stderr and "/nodes/trainer/params/gamma" in done.stderr
        assert "Traceback" not in done.stderr

    @pytest.mark.nodes
    def test_size_mismatch_known_before_running_exits_2(self, tmp_path: Path) -> None:
        """An agent input_size that contradicts the env's spaces, known from the env's params, is refused before
        anything runs: exit 2, the node and the --set argument named, nothing written."""
        done = dnne("run", str(CARTPOLE), "--set", "agent.input_size=7", "--run-dir", str(tmp_path / "r"), "-q")
        assert done.returncode == 2
        assert "[observation_size_mismatch] node 'agent' 'input_size'" in done.stderr
        assert "(at --set agent.input_size)" in done.stderr and "Traceback" not in done.stderr
        assert not (tmp_path / "r").exists()

    @pytest.mark.nodes
    def test_setup_mismatch_exits_2(self, tmp_path: Path) -> None:
        """Where the spaces are known only at setup (the low-level agent reads what the subgoal concatenation
        declares), a contradicting input_size is a clear setup error naming the node, exit 2."""
        done = dnne("run", str(ROOT / "graphs" / "hierarchical_ppo.json"), "--set", "low_agent.input_size=7",
                    "--run-dir", str(tmp_path / "r"), "-q")
        assert done.returncode == 2
        assert "low_agent" in done.stderr and "input_size is 7 but the env says" in done.stderr
        assert "Traceback" not in done.stderr
        assert summary(tmp_path / "r")["stop_reason"] == "failed"

    @pytest.mark.nodes
    def test_action_space_mismatch_exits_2(self, tmp_path: Path) -> None:
        """A discrete agent on a continuous env is a setup error naming the agent, exit 2."""
        done = dnne("run", str(CARTPOLE), "--set", "env.task=Pendulum", "--run-dir", str(tmp_path / "r"), "-q")
        assert done.returncode == 2
        assert "'agent'" in done.stderr and "action_space is 'discrete'" in done.stderr
        assert "Traceback" not in done.stderr

    @pytest.mark.nodes
    def test_node_failure_exits_1(self, tmp_path: Path) -> None:
        """A plugin node that raises mid-run stops the graph: exit 1, the node named, summary says failed."""
        (tmp_path / "raising_plugin.py").write_text(
            "from dnne.runtime import Input, Node, Output\n"
            "class Exploding(Node):\n"
            "    \"\"\"Raises on its third reward batch.\"\"\"\n"
            "    rewards = Input('Tensor', offset=1)\n"
            "    out = Output('Tensor', offset=1)\n"
            "    async def compute(self, rewards):\n"
            "        if self.firings == 3:\n"
            "            raise RuntimeError('boom')\n"
            "        return {'out': rewards}\n"
            "def register(registry):\n"
            "    registry.add_node(Exploding)\n"
        )
        graph = json.loads(CARTPOLE.read_text())
        graph["nodes"]["boom"] = {"type": "Exploding"}
        graph["links"] = [link for link in graph["links"] if link != ["step.rewards", "trainer.rewards"]]
        graph["links"] += [["step.rewards", "boom.rewards"], ["boom.out", "trainer.rewards"]]
        path = tmp_path / "g.json"
        path.write_text(json.dumps(graph))
        env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
        done = subprocess.run([*DNNE, "run", str(path), "--plugin", "raising_plugin", "--run-dir",
                               str(tmp_path / "r"), "-q"], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 1
        assert "node 'boom' (Exploding) failed in run: RuntimeError: boom" in done.stderr
        assert "Traceback" not in done.stderr
        result = summary(tmp_path / "r")
        assert result["stop_reason"] == "failed" and result["error"]["node"] == "boom"
        assert not (tmp_path / "r" / "checkpoints").exists()

    @pytest.mark.nodes
    def test_validate_and_nodes(self) -> None:
        """validate accepts the shipped graph; nodes lists every built-in type."""
        assert dnne("validate", str(CARTPOLE)).returncode == 0
        headers = [line.split()[0] for line in dnne("nodes").stdout.splitlines() if line and not line[0].isspace()]
        assert {"EnvNode", "StepNode", "ORNode", "PPOAgentNode", "PPOTrainerNode", "CartpoleActionNode"} <= set(headers)


class TestSignals:
    @pytest.mark.nodes
    def test_sigint_to_background_job(self, tmp_path: Path) -> None:
        """A run started as a background job of a non-interactive shell stops on SIGINT: exit 130, summary and
        checkpoint written."""
        run_dir = tmp_path / "r"
        script = (f"{' '.join(DNNE)} run {CARTPOLE} --set run.target_return=null --max-steps 10000000 "
                  f"--run-dir {run_dir} -q & echo $! > {tmp_path}/pid; wait $!; echo $? > {tmp_path}/rc")
        shell = subprocess.Popen(["bash", "-c", script])
        deadline = time.time() + 60
        while not (run_dir / "metrics.jsonl").exists() or not (run_dir / "metrics.jsonl").read_text():
            assert time.time() < deadline, "the run never started"
            time.sleep(0.2)
        os.kill(int((tmp_path / "pid").read_text()), signal.SIGINT)
        shell.wait(timeout=60)
        assert (tmp_path / "rc").read_text().strip() == "130"
        result = summary(run_dir)
        assert result["stop_reason"] == "interrupted" and result["env_steps"] > 0
        assert list((run_dir / "checkpoints").glob("ckpt-*.pt"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short training run."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    done = dnne("run", str(CARTPOLE), "--set", "run.target_return=null", "--max-steps", "4096",
                "--run-dir", str(run_dir), "-q")
    assert done.returncode == 0, done.stderr
    return run_dir


class TestResumeAndTools:
    @pytest.mark.nodes
    def test_resume_continues_counters(self, trained: Path, tmp_path: Path) -> None:
        """--resume continues env_steps and iterations in the same run directory, appending metrics."""
        before = summary(trained)
        rows_before = len((trained / "metrics.jsonl").read_text().splitlines())
        done = dnne("run", "--resume", str(trained), "--max-steps", "8192", "-q")
        assert done.returncode == 0, done.stderr
        after = summary(trained)
        assert after["env_steps"] >= 8192 > before["env_steps"]
        assert after["iterations"] > before["iterations"]
        rows = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
        assert len(rows) > rows_before and rows[rows_before]["iteration"] == before["iterations"] + 1

    def test_corrupt_checkpoint_is_a_clear_error(self, trained: Path, tmp_path: Path) -> None:
        """A truncated checkpoint gives exit 2 and a message, no traceback."""
        bad = tmp_path / "bad" / "checkpoints"
        bad.mkdir(parents=True)
        data = next((trained / "checkpoints").glob("ckpt-*.pt")).read_bytes()
        (bad / "ckpt-00000001.pt").write_bytes(data[: len(data) // 2])
        (tmp_path / "bad" / "graph.json").write_text((trained / "graph.json").read_text())
        done = dnne("run", "--resume", str(tmp_path / "bad"), "-q")
        assert done.returncode == 2 and "not a readable checkpoint" in done.stderr
        assert "Traceback" not in done.stderr

    @pytest.mark.nodes
    def test_checkpoint_of_another_graph_refused(self, trained: Path, tmp_path: Path) -> None:
        """Playing a checkpoint with a graph whose node types differ names the mismatched nodes."""
        graph = json.loads(CARTPOLE.read_text())
        graph["nodes"]["agent2"] = graph["nodes"].pop("agent")
        graph["links"] = [[end.replace("agent.", "agent2.") for end in link] for link in graph["links"]]
        path = tmp_path / "other.json"
        path.write_text(json.dumps(graph))
        done = dnne("play", str(path), "--checkpoint", str(trained), "--episodes", "1")
        assert done.returncode == 2 and "different graph" in done.stderr and "agent2" in done.stderr

    @pytest.mark.nodes
    def test_play_reports_returns(self, trained: Path) -> None:
        """play runs without the trainer and reports episode returns."""
        done = dnne("play", str(CARTPOLE), "--checkpoint", str(trained), "--episodes", "3")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout.strip().splitlines()[-1])
        assert report["episodes"] >= 3 and report["mean_return"] > 0

    def test_plot_writes_png(self, trained: Path, tmp_path: Path) -> None:
        """plot writes a PNG image."""
        out = tmp_path / "c.png"
        assert dnne("plot", str(trained), "-o", str(out)).returncode == 0
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    @pytest.mark.nodes
    def test_tensorboard_readable(self, trained: Path) -> None:
        """TensorBoard's own reader finds the loss and return scalars."""
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        acc = EventAccumulator(str(trained / "tensorboard"))
        acc.Reload()
        tags = acc.Tags()["scalars"]
        assert "trainer/policy_loss" in tags and any(t.endswith("mean_return") for t in tags)

    @pytest.mark.nodes
    def test_export_matches_agent(self, trained: Path, tmp_path: Path) -> None:
        """The exported policy (torch.export) gives the agent's deterministic actions."""
        out = tmp_path / "policy.pt2"
        done = dnne("export", str(trained), "-o", str(out))
        assert done.returncode == 0, done.stderr
        policy = torch.export.load(str(out)).module()
        from dnne.nodes.rl.actor_critic import ActorCritic

        state = torch.load(sorted((trained / "checkpoints").glob("ckpt-*.pt"))[-1], weights_only=True)
        model = ActorCritic(4, 2, (64, 64), "tanh", "discrete", shared_trunk=False)  # as the graph's agent
        model.load_state_dict(state["nodes"]["agent"]["model"])
        obs = torch.randn(32, 4)
        expected = model.act(obs, deterministic=True).action
        assert torch.equal(policy(obs), expected)
        assert out.with_suffix(".onnx").exists()


def test_the_console_script_returns_main_s_code_and_leaves_what_is_alive_to_the_exit(monkeypatch) -> None:
    """``console`` (the ``dnne`` script) freezes the objects still alive after ``main``, so the interpreter's exit
    does not collect them; ``main`` itself, which callers go on after, freezes nothing."""
    import gc
    import importlib

    cli_main = importlib.import_module("dnne.runtime.cli.main")
    monkeypatch.setattr(cli_main, "_main", lambda argv: 3)
    gc.unfreeze()  # an embedded run earlier in this process froze its start-up's objects (runtime/heap.py)
    try:
        assert cli_main.main([]) == 3 and gc.get_freeze_count() == 0
        assert cli_main.console() == 3 and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
