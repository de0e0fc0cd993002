"""Evaluation you can trust: exactly N fresh, seeded episodes of any size, not bound by the training graph's stop
conditions, with mean, std and every episode reported."""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CARTPOLE = ROOT / "graphs" / "cartpole_ppo.json"
ZOO = ROOT / "graphs" / "presets" / "cartpole_zoo.json"
DNNE = [sys.executable, "-m", "dnne.runtime.cli"]


def evaluate(command: str, run_dir: Path, *args: str) -> dict:
    """``dnne play|eval`` of ``run_dir``'s checkpoint; the JSON report."""
    done = subprocess.run([*DNNE, command, str(CARTPOLE), "--checkpoint", str(run_dir), "-q", *args],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short training run of 8 envs."""
    run_dir = tmp_path_factory.mktemp("eval") / "run"
    done = subprocess.run([*DNNE, "run", str(CARTPOLE), "--set", "run.target_return=null", "--max-steps", "2048",
                           "--run-dir", str(run_dir), "-q"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return run_dir


class TestEvaluation:
    def test_exactly_n_episodes_with_statistics(self, trained: Path) -> None:
        """eval reports exactly N episodes, each with its return and length, and their mean and std."""
        report = evaluate("eval", trained, "--episodes", "5")
        assert report["episodes"] == 5 and len(report["returns"]) == 5 and len(report["lengths"]) == 5
        assert report["mean_return"] == pytest.approx(statistics.fmean(report["returns"]))
        assert report["std_return"] == pytest.approx(statistics.pstdev(report["returns"]))
        assert report["returns"] == [float(length) for length in report["lengths"]]  # Cartpole: +1 per step

    def test_any_num_envs_and_fresh_episodes(self, trained: Path) -> None:
        """A checkpoint of 8 envs evaluates on 1 env (the envs start fresh, not from the checkpoint's state)."""
        report = evaluate("play", trained, "--episodes", "3", "--set", "env.num_envs=1")
        assert report["episodes"] == 3
        assert report["env_steps"] == sum(report["lengths"])  # one env: every step belongs to a counted episode

    def test_seeded_and_deterministic(self, trained: Path) -> None:
        """The same --seed gives the same episodes; another seed other episodes."""
        first = evaluate("eval", trained, "--episodes", "4", "--seed", "1", "--set", "env.num_envs=2")
        again = evaluate("eval", trained, "--episodes", "4", "--seed", "1", "--set", "env.num_envs=2")
        other = evaluate("eval", trained, "--episodes", "4", "--seed", "2", "--set", "env.num_envs=2")
        assert first["returns"] == again["returns"]
        assert first["returns"] != other["returns"]

    def test_not_bound_by_training_stop_conditions(self, trained: Path) -> None:
        """The training graph's max_steps (here 10 env steps) does not cut the evaluation short."""
        report = evaluate("eval", trained, "--episodes", "3", "--set", "env.num_envs=1", "--set",
                          "run.max_steps=10")
        assert report["episodes"] == 3 and report["env_steps"] > 10


class TestQuota:
    def test_short_episodes_do_not_fill_the_count(self) -> None:
        """Two envs whose episodes last 2 and 10 steps: 4 episodes are 2 of each, not the first 4 to end (env 0's)."""
        from dnne.nodes.cli.play import EpisodeQuota

        quota = EpisodeQuota(4)
        finished = []
        for step in range(1, 21):
            for env, length in ((0, 2), (1, 10)):
                if step % length == 0:
                    finished.append(quota.add("step", {"episode_return": float(length), "episode_length": length,
                                                       "episode_env": float(env), "num_envs": 2.0}))
        assert finished.index(True) == len(finished) - 1  # filled by env 1's second episode, at step 20
        assert [e["length"] for e in quota.episodes()] == [2, 2, 10, 10]

    def test_rows_name_their_env(self, trained: Path) -> None:
        """Play rows carry the env index, so a 3-env evaluation of 6 episodes takes 2 from each env."""
        report = evaluate("eval", trained, "--episodes", "6", "--set", "env.num_envs=3")
        assert report["episodes"] == 6
        # Each env's 2 episodes end before the run does: at least the longest env's two episodes of steps.
        pairs = [report["lengths"][i:i + 2] for i in (0, 2, 4)]
        assert report["env_steps"] >= 3 * max(sum(pair) for pair in pairs)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A run of the zoo graph with an evaluation node every update; its graph file and run directory."""
    document = json.loads(ZOO.read_text())
    document["nodes"]["eval"] = {"type": "PolicyEvalNode", "params": {"every": 1, "episodes": 2}}
    document["links"] += [["trainer.weights", "eval.weights"], ["agent.model", "eval.model"],
                          ["env.env_handle", "eval.env_handle"]]
    folder = tmp_path_factory.mktemp("best")
    graph = folder / "graph.json"
    graph.write_text(json.dumps(document))
    done = subprocess.run([*DNNE, "run", str(graph), "--set", "run.target_return=null", "--max-steps", "1536",
                           "--run-dir", str(folder / "run"), "-q"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return graph, folder / "run"


class TestBest:
    def test_best_replaces_the_agents_weights(self, evaluated: tuple[Path, Path]) -> None:
        """with_best puts the evaluation node's best weights and version into the agent's state."""
        from dnne.runtime import checkpoint
        from dnne.nodes.cli.play import with_best

        state = checkpoint.load(evaluated[1])
        best = state["nodes"]["eval"]["best"]
        chosen = with_best(state)["nodes"]["agent"]
        assert chosen["version"] == best["version"] and chosen["model"] is best["parameters"]
        assert state["nodes"]["agent"]["model"] is not best["parameters"]  # the checkpoint itself is unchanged

    def test_play_best(self, evaluated: tuple[Path, Path]) -> None:
        """dnne play --best runs; a checkpoint without evaluation is refused with exit 2, naming the cause."""
        graph, run_dir = evaluated
        done = subprocess.run([*DNNE, "play", str(graph), "--checkpoint", str(run_dir), "--best", "--episodes", "2",
                               "-q"], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0 and json.loads(done.stdout.strip().splitlines()[-1])["episodes"] == 2

    def test_play_best_with_the_graph_file_trained(self, evaluated: tuple[Path, Path]) -> None:
        """The README's way: train with an evaluation node (run.eval adds one), then play or eval --best with the
        graph file without it: the checkpoint's evaluation node is not needed to act, so it is not a mismatch."""
        _, run_dir = evaluated
        done = subprocess.run([*DNNE, "eval", str(ZOO), "--checkpoint", str(run_dir), "--best", "--episodes", "2",
                               "-q"], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout.strip().splitlines()[-1])["episodes"] == 2

    def test_a_graph_whose_nodes_differ_is_still_refused(self, evaluated: tuple[Path, Path], tmp_path: Path) -> None:
        """Dropping the checkpoint's extra nodes from the check does not let a graph whose own nodes differ play:
        the zoo graph with its agent renamed is refused, naming the node."""
        _, run_dir = evaluated
        other = tmp_path / "other.json"
        other.write_text(ZOO.read_text().replace('"agent', '"actor'))
        done = subprocess.run([*DNNE, "play", str(other), "--checkpoint", str(run_dir), "--best", "-q"],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and "actor: checkpoint has nothing" in done.stderr
        assert "Traceback" not in done.stderr

    def test_no_best_is_bad_input(self, trained: Path) -> None:
        """A run without an evaluation node has no best: exit 2, no traceback."""
        done = subprocess.run([*DNNE, "play", str(CARTPOLE), "--checkpoint", str(trained), "--best", "-q"],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and "holds no best weights" in done.stderr and "Traceback" not in done.stderr
