"""``run.eval``: evaluation during training as a run key. At load it becomes an evaluation node wired to the one
trainer, its agent and their env (placed with the env); bad values and graphs it cannot wire are refused with a
pointer; a run keeps ``checkpoints/best.pt`` at each new best, records it in ``summary.json``, and its weights give
the recorded evaluation return when played again."""
from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from dnne.nodes.cli.export import deployable_modules
from dnne.nodes.cli.play import best_file, with_best
from dnne.runtime import checkpoint
from dnne.runtime.errors import GraphError
from dnne.runtime.loading import load_graph
from dnne.runtime.registry import default_registry
from dnne.runtime.rundir import RunDirectory
from dnne.runtime.runner import GraphRun
from greedy_play import greedy_return

ROOT = Path(__file__).resolve().parents[3]
CARTPOLE = ROOT / "graphs" / "cartpole_ppo.json"
ZOO = json.loads((ROOT / "graphs" / "presets" / "cartpole_zoo.json").read_text())  # 256 env steps an update
REGISTRY = default_registry()


def issues(source: Any, overrides: list[str]) -> list[tuple[str, str | None]]:
    """(code, place) of each error of loading ``source`` with ``overrides``."""
    with pytest.raises(GraphError) as caught:
        load_graph(source, overrides, REGISTRY)
    return [(issue.code, issue.where) for issue in caught.value.errors]


class TestWiring:
    def test_adds_a_wired_evaluation_node(self) -> None:
        """The key becomes a PolicyEvalNode of its values, linked from the trainer's weights (latest, so an
        evaluation never holds the trainer back), the agent's model and the env's handle; the key leaves the run
        section, so the resolved graph loads again without a second node."""
        value = {"every_updates": 5, "episodes": 4, "seed": 3, "deterministic": False, "num_envs": 2}
        graph = load_graph(CARTPOLE, [f"run.eval={json.dumps(value)}"], REGISTRY)
        node = graph.nodes["eval"]
        assert node.type == "PolicyEvalNode"
        assert node.params == {"every": 5, "episodes": 4, "seed": 3, "deterministic": False, "num_envs": 2}
        into = {(link.src, link.src_port, link.dst_port): link for link in graph.links if link.dst == "eval"}
        assert set(into) == {("trainer", "weights", "weights"), ("agent", "model", "model"),
                             ("env", "env_handle", "env_handle")}
        assert into[("trainer", "weights", "weights")].policy == "latest"
        assert "eval" not in graph.run
        again = load_graph(graph.to_native(), registry=REGISTRY)
        assert sorted(again.nodes) == sorted(graph.nodes)

    def test_placed_with_the_env(self) -> None:
        """An env handle never crosses a process: the evaluation node goes where the env node is."""
        document = json.loads(CARTPOLE.read_text())
        document["placement"] = {"env": "envs", "step": "envs", "action": "envs", "or": "envs"}
        document["run"]["eval"] = {}
        graph = load_graph(document, registry=REGISTRY)
        assert graph.placement["eval"] == "envs"

    def test_bad_values_point_at_the_key(self) -> None:
        """An unknown key, a value out of bounds or not an object: refused, pointing at run.eval in the file or at
        the --set argument."""
        document = json.loads(CARTPOLE.read_text())
        document["run"]["eval"] = {"every_updates": 0}
        assert issues(document, []) == [("value_out_of_bounds", "/run/eval/every_updates")]
        assert issues(CARTPOLE, ['run.eval={"episodez": 3}']) == [("bad_run_option", "--set run.eval")]
        assert issues(CARTPOLE, ["run.eval=5"]) == [("bad_run_option", "--set run.eval")]
        assert load_graph(CARTPOLE, ["run.eval=null"], REGISTRY).nodes.keys() == json.loads(
            CARTPOLE.read_text())["nodes"].keys()

    def test_graphs_it_cannot_wire(self) -> None:
        """No trainer, two trainers, several env groups, or an evaluation node already there: refused by name."""
        assert ("ambiguous_trainer", "--set run.eval") in issues(ROOT / "graphs" / "hierarchical_ppo.json",
                                                                 ["run.eval={}"])
        assert ("ambiguous_env", "--set run.eval") in issues(ROOT / "graphs" / "multi_env_ppo.json", ["run.eval={}"])
        document = json.loads(CARTPOLE.read_text())
        del document["nodes"]["trainer"]
        document["links"] = [link for link in document["links"] if "trainer" not in json.dumps(link)]
        assert ("no_trainer", "--set run.eval") in issues(document, ["run.eval={}"])
        document = json.loads(CARTPOLE.read_text())
        document["nodes"]["judge"] = {"type": "PolicyEvalNode"}
        document["links"] += [["trainer.weights", "judge.weights"], ["agent.model", "judge.model"],
                              ["env.env_handle", "judge.env_handle"]]
        assert ("duplicate_evaluation", "--set run.eval") in issues(document, ["run.eval={}"])


@pytest.mark.usefixtures("one_thread")
def test_best_checkpoint_reproduces_its_return(tmp_path: Path) -> None:
    """A short run with run.eval writes a row per evaluation, keeps best.pt at the best one (never pruned, in
    summary.json with its return, version, iterations and env steps), and the weights in best.pt give the recorded
    return when played again on the same seeded episodes."""
    document = copy.deepcopy(ZOO)
    document["run"].update(max_steps=1024, target_return=None, timeout=None,
                           eval={"every_updates": 1, "episodes": 2, "num_envs": 1, "seed": 7})
    run_dir = tmp_path / "run"
    graph = load_graph(document, registry=REGISTRY)
    run = GraphRun(graph, REGISTRY, hooks=[RunDirectory(run_dir, keep=1, tensorboard=False)], run_dir=run_dir)
    result = asyncio.run(asyncio.wait_for(run.execute(), 300))
    assert result.error is None
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evaluations = [row for row in rows if "eval_return_mean" in row]
    assert evaluations and all(row["eval_episodes"] == 2 for row in evaluations)
    best_row = max(evaluations, key=lambda row: row["eval_return_mean"])
    summary = json.loads((run_dir / "summary.json").read_text())["best_checkpoint"]
    assert summary["path"] == str(run_dir / "checkpoints" / "best.pt") == str(best_file(run_dir))
    assert summary["eval_return_mean"] == best_row["eval_return_mean"]
    assert summary["policy_version"] == best_row["eval_policy_version"]
    assert 0 < summary["env_steps"] <= 1024 and summary["iterations"] >= summary["policy_version"]
    assert len(checkpoint.candidates(run_dir / "checkpoints")) == 1  # keep=1 pruned the others, never best.pt
    state = with_best(checkpoint.load(run_dir / "checkpoints" / "best.pt"))
    normalize = any(name.startswith("obs_normalizer") for name in state["nodes"]["agent"]["model"])
    assert greedy_return(state["nodes"]["agent"]["model"], normalize, seed=7, episodes=2) == pytest.approx(
        summary["eval_return_mean"])
    exported = deployable_modules(run_dir / "graph.json", run_dir, [], best=True)["agent"][0].state_dict()
    acting = {name: value for name, value in state["nodes"]["agent"]["model"].items() if "critic" not in name}
    assert acting
    for name, value in acting.items():  # dnne export RUN_DIR --best: the best weights (the critic is not deployed)
        assert any(value.shape == held.shape and torch.equal(value, held) for held in exported.values()), name


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_best_checkpoint_of_a_split_run(tmp_path: Path) -> None:
    """With the env group in a worker, the evaluation node runs there (beside the env) and its new bests still
    reach the run directory as best.pt, through the worker's checkpoint request, with every part's state in it."""
    document = copy.deepcopy(ZOO)
    document["placement"] = {node_id: "envs" for node_id in ("env", "or", "action", "step")}
    document["run"].update(max_steps=1024, target_return=None, timeout=None,
                           eval={"every_updates": 1, "episodes": 2, "num_envs": 1, "seed": 7})
    run_dir = tmp_path / "run"
    graph = load_graph(document, registry=REGISTRY)
    assert graph.placement["eval"] == "envs"
    run = GraphRun(graph, REGISTRY, hooks=[RunDirectory(run_dir, tensorboard=False)], run_dir=run_dir)
    result = asyncio.run(asyncio.wait_for(run.execute(), 300))
    assert result.error is None
    summary = json.loads((run_dir / "summary.json").read_text())["best_checkpoint"]
    state = checkpoint.load(run_dir / "checkpoints" / "best.pt")
    assert {"eval", "env", "agent", "trainer"} <= set(state["nodes"])
    assert state["nodes"]["eval"]["best"]["return"] == summary["eval_return_mean"]
    played = with_best(state)["nodes"]["agent"]["model"]
    normalize = any(name.startswith("obs_normalizer") for name in played)
    assert greedy_return(played, normalize, seed=7, episodes=2) == pytest.approx(summary["eval_return_mean"])
