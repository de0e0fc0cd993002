"""Evaluation during training (``PolicyEvalNode``): it never changes the training, records a row per evaluation,
keeps the best weights across a resume, and counts a fixed quota of episodes per env (no short-episode bias)."""
from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from dnne.nodes.envs.base import BatchedEnv, StepResult
from dnne.nodes.envs.spaces import Box, Discrete
from dnne.nodes.rl.evaluation import quotas, run_episodes
from dnne.runtime.loading import load_graph
from dnne.runtime.registry import default_registry
from dnne.runtime.runner import GraphRun
from greedy_play import greedy_return

ROOT = Path(__file__).resolve().parents[3]
# 8 envs x horizon 32: 256 env steps an update
ZOO = json.loads((ROOT / "graphs" / "presets" / "cartpole_zoo.json").read_text())
REGISTRY = default_registry()
EVAL_LINKS = [["trainer.weights", "eval.weights"], ["agent.model", "eval.model"], ["env.env_handle", "eval.env_handle"]]


def zoo(max_steps: int, evaluation: dict[str, Any] | None = None) -> dict[str, Any]:
    """The zoo Cartpole graph to ``max_steps``, with an evaluation node of ``evaluation``'s params if given."""
    document = copy.deepcopy(ZOO)
    document["run"].update(max_steps=max_steps, target_return=None, timeout=None)
    if evaluation is not None:
        document["nodes"]["eval"] = {"type": "PolicyEvalNode", "params": evaluation}
        document["links"] += EVAL_LINKS
    return document


def train(document: dict[str, Any], restore: dict[str, Any] | None = None) -> tuple[GraphRun, list[dict]]:
    """Run ``document`` in one process; the run and its metrics rows."""
    run = GraphRun(load_graph(document, registry=REGISTRY), REGISTRY, restore=restore)
    rows: list[dict] = []
    run.context.metric_sinks.append(lambda node_id, values: rows.append(dict(values, node=node_id)))
    result = asyncio.run(asyncio.wait_for(run.execute(), 300))
    assert result.error is None and result.stop_reason == "max_steps"
    return run, rows


def eval_rows(rows: list[dict]) -> list[dict]:
    """The evaluation rows."""
    return [row for row in rows if row["node"] == "eval"]


@pytest.mark.usefixtures("one_thread")
class TestEvaluationDuringTraining:
    def test_training_is_the_same_with_evaluation(self) -> None:
        """A run with an evaluation node trains exactly as one without: same counters, same learner weights."""
        plain, _ = train(zoo(1536))
        evaluated, rows = train(zoo(1536, {"every": 1, "episodes": 3, "num_envs": 2, "deterministic": False}))
        assert len(eval_rows(rows)) >= 3
        for key in ("env_steps", "iterations", "episodes", "mean_return", "mean_length"):
            assert evaluated.counters.get(key) == plain.counters.get(key), key
        for name, value in plain.nodes["trainer"].learner.network.state_dict().items():
            assert torch.equal(value, evaluated.nodes["trainer"].learner.network.state_dict()[name]), name

    def test_rows_and_best(self) -> None:
        """Every ``every``-th version is evaluated on exactly ``episodes`` episodes; the best is the highest mean so
        far, and its weights (in the node's state) give that mean when played independently."""
        run, rows = train(zoo(2048, {"every": 2, "episodes": 2, "num_envs": 1, "seed": 7, "checkpoint_best": False}))
        evaluations = eval_rows(rows)
        assert [row["eval_policy_version"] for row in evaluations] == [0.0, 2.0, 4.0, 6.0]
        assert all(row["eval_episodes"] == 2.0 for row in evaluations)
        running = [max(row["eval_return_mean"] for row in evaluations[:i + 1]) for i in range(len(evaluations))]
        assert [row["eval_best_return"] for row in evaluations] == running
        best = run.nodes["eval"].state_dict()["best"]
        assert best["return"] == running[-1] and best["agent"] == "agent"
        assert evaluations[[row["eval_return_mean"] for row in evaluations].index(running[-1])][
            "eval_policy_version"] == best["version"]
        assert play_greedily(best["parameters"], run, seed=7, episodes=2) == pytest.approx(best["return"])

    def test_a_stop_lets_the_evaluation_under_way_finish(self) -> None:
        """Version 7 is published one update before the run's end and its 50 episodes take longer than that update:
        the stop at max_steps waits for the evaluation (a stop point after it), whose row is recorded."""
        _, rows = train(zoo(2048, {"every": 7, "episodes": 50, "num_envs": 1, "checkpoint_best": False}))
        evaluations = eval_rows(rows)
        assert [row["eval_policy_version"] for row in evaluations] == [0.0, 7.0]
        assert evaluations[-1]["eval_episodes"] == 50.0

    def test_resume_keeps_the_best_so_far(self) -> None:
        """A resumed run starts from the checkpoint's best: a better one replaces it, a worse one does not."""
        first, _ = train(zoo(1024, {"every": 1, "episodes": 2, "num_envs": 2, "checkpoint_best": False}))
        from dnne.runtime import checkpoint

        state = checkpoint.collect(first)
        state["nodes"]["eval"]["best"] = dict(state["nodes"]["eval"]["best"], **{"return": 1e9})
        resumed, rows = train(zoo(2048, {"every": 1, "episodes": 2, "num_envs": 2, "checkpoint_best": False}),
                              restore=state)
        evaluations = eval_rows(rows)
        assert evaluations and min(row["eval_policy_version"] for row in evaluations) > state["nodes"]["eval"][
            "evaluated"]
        assert all(row["eval_best_return"] == 1e9 for row in evaluations)
        assert resumed.nodes["eval"].state_dict()["best"]["return"] == 1e9


def play_greedily(parameters: dict[str, torch.Tensor], run: GraphRun, seed: int, episodes: int) -> float:
    """The mean return of ``episodes`` arg-max episodes of one env reset with ``seed``, written out by hand."""
    return greedy_return(parameters, run.nodes["agent"].network.obs_normalizer is not None, seed, episodes)


class LengthByEnv(BatchedEnv):
    """Env ``i``'s episodes last ``lengths[i]`` steps, with reward 1 a step: the return is the length."""

    def __init__(self, lengths: list[int]) -> None:
        self.lengths = torch.tensor(lengths)
        self.t = torch.zeros(len(lengths), dtype=torch.long)
        self.num_envs = len(lengths)
        self.device = torch.device("cpu")
        self.observation_space = Box(torch.full((1,), -1.0), torch.full((1,), 1.0))
        self.action_space = Discrete(2)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        self.t.zero_()
        return torch.zeros(self.num_envs, 1)

    def step(self, actions: torch.Tensor) -> StepResult:
        self.t += 1
        ended = self.t >= self.lengths
        self.t = self.t.masked_fill(ended, 0)
        observations = torch.zeros(self.num_envs, 1)
        return StepResult(observations, torch.ones(self.num_envs), ended, torch.zeros_like(ended), observations,
                          torch.zeros(0), torch.zeros(0, dtype=torch.long))


class TestQuota:
    def test_quotas(self) -> None:
        """Episodes split as evenly as possible over the envs."""
        assert quotas(10, 4) == [3, 3, 2, 2] and quotas(3, 5) == [1, 1, 1, 0, 0] and sum(quotas(7, 3)) == 7

    def test_short_episodes_do_not_fill_the_count(self) -> None:
        """Env 0 ends every 2 steps, env 1 every 10: 4 episodes are 2 of each (mean length 6), not the first 4 to
        end (all env 0's, mean 2)."""
        result = run_episodes(LengthByEnv([2, 10]), lambda obs, ended: torch.zeros(2, dtype=torch.long), 4, seed=0)
        assert result.lengths == [2, 2, 10, 10] and result.returns == [2.0, 2.0, 10.0, 10.0]
        assert result.summary()["eval_length_mean"] == 6.0

    def test_max_steps_bounds_an_evaluation(self) -> None:
        """An env that does not end within max_steps leaves its quota short instead of running forever."""
        result = run_episodes(LengthByEnv([2, 1000]), lambda obs, ended: torch.zeros(2, dtype=torch.long), 4,
                              seed=0, max_steps=50)
        assert result.lengths == [2, 2]
